//! Weighted least squares with one absorbed factor, and the design-based variances of any linear
//! estimand of its coefficients: HC2, CR2 with Bell-McCaffrey/Satterthwaite degrees of freedom.
//!
//! The factor's dummies are never built. Rows are multiplied by √w (estimatr's convention: HC2 then
//! uses the leverage of H = X(X'WX)⁻¹X'W), demeaned within the factor's levels with weighted means,
//! and the small projected system is solved with a rank check. The full-design leverage is
//! `h_ii = w_i / W_g(i) + x̃_i' (X̃'X̃)⁻¹ x̃_i` (docs/statistics.md B.2), so HC2 and CR2 are exact.
//!
//! Every estimator in this module family is a linear function of the outcome, θ = Σ ã_i ỹ_i, and
//! is described by its influence vector ã (in the √w-transformed space); variances and degrees of
//! freedom are functions of that vector, so the blocked difference in means, ANCOVA and Lin share
//! one implementation.

use std::collections::HashMap;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::EstimateError;
use super::linalg::{GramInverse, KahanSum, invert_gram, ksum, sqrt_pinv};

/// Leverage at or above `1 - LEVERAGE_ONE` counts as 1: such a row is fitted exactly and its HC2
/// contribution is 0 (estimatr 2.0; 1.x returned NaN).
const LEVERAGE_ONE: f64 = 1e-10;

/// A regression `y ~ X + factor(group)` with optional weights.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// Outcome, one per row.
    pub y: ArrayView1<'a, f64>,
    /// Explicit regressors (n x p); the factor takes the place of the intercept.
    pub x: ArrayView2<'a, f64>,
    /// Level of the absorbed factor per row, `0..n_groups`.
    pub group: &'a [u32],
    /// Number of factor levels.
    pub n_groups: usize,
    /// Weights (any positive scale), or `None` for equal weights.
    pub weights: Option<ArrayView1<'a, f64>>,
}

/// The fitted regression.
#[derive(Debug, Clone)]
pub struct Fit {
    /// √w per row.
    pub sqw: Vec<f64>,
    /// Factor level per row.
    pub group: Vec<u32>,
    /// Sum of weights per level.
    pub group_w: Vec<f64>,
    /// Rows of X demeaned within levels and multiplied by √w.
    pub xt: Array2<f64>,
    /// Residuals multiplied by √w.
    pub et: Vec<f64>,
    /// Coefficients of X (0 for dropped columns).
    pub beta: Array1<f64>,
    /// (X̃'X̃)⁻¹ over kept columns and which columns were dropped.
    pub ginv: GramInverse,
    /// Full-design leverage per row.
    pub leverage: Vec<f64>,
    /// Weighted mean of X per level (levels x p).
    pub xbar: Array2<f64>,
    /// Fixed effect per level: ȳ_g − x̄_g'β.
    pub fe: Vec<f64>,
    /// Levels with at least one row.
    pub levels_present: usize,
}

impl Fit {
    /// Number of rows.
    pub fn n(&self) -> usize {
        self.sqw.len()
    }

    /// Rank of the full design: kept columns plus the levels present.
    pub fn rank(&self) -> usize {
        self.ginv.kept.len() + self.levels_present
    }

    /// Influence vector (√w space) of θ = Σ_g c_g·FE_g + d'β.
    pub fn influence(&self, c: &[f64], d: ArrayView1<f64>) -> Vec<f64> {
        let p = self.beta.len();
        // f = M (d - Σ_g c_g x̄_g)
        let mut adj = d.to_owned();
        for (g, &cg) in c.iter().enumerate() {
            if cg != 0.0 {
                for k in 0..p {
                    adj[k] -= cg * self.xbar[[g, k]];
                }
            }
        }
        let f = self.ginv.inv.dot(&adj);
        (0..self.n())
            .map(|i| {
                let g = self.group[i] as usize;
                let cg = c.get(g).copied().unwrap_or(0.0);
                let base = if cg != 0.0 {
                    cg * self.sqw[i] / self.group_w[g]
                } else {
                    0.0
                };
                base + self.xt.row(i).dot(&f)
            })
            .collect()
    }

    /// θ for an influence vector.
    pub fn value(&self, influence: &[f64], yt: &[f64]) -> f64 {
        let mut s = KahanSum::default();
        for (a, y) in influence.iter().zip(yt) {
            s.add(a * y);
        }
        s.value()
    }

    /// HC2 variance of the estimand with this influence vector, and how many rows had leverage 1.
    pub fn hc2(&self, influence: &[f64]) -> (f64, usize) {
        let mut s = KahanSum::default();
        let mut saturated = 0;
        for i in 0..self.n() {
            let one_minus_h = 1.0 - self.leverage[i];
            if one_minus_h <= LEVERAGE_ONE {
                saturated += 1;
                continue;
            }
            let a = influence[i] * self.et[i];
            s.add(a * a / one_minus_h);
        }
        (s.value(), saturated)
    }

    /// CR2 variance and Bell-McCaffrey (Satterthwaite) df for one estimand, clusters given per row
    /// as `0..n_clusters`.
    pub fn cr2(&self, influence: &[f64], clusters: &Clusters) -> Result<Cr2, EstimateError> {
        let first = self.sqw.first().copied().unwrap_or(1.0);
        if self.sqw.iter().any(|s| *s != first) {
            return self.cr2_weighted(influence, clusters);
        }
        Ok(self.cr2_equal_weights(influence, clusters))
    }

    /// CR2 with equal weights: A_s = [(I − H)_ss]^{+1/2}; the Satterthwaite df from low-rank
    /// pieces, so it works for any number of clusters.
    fn cr2_equal_weights(&self, influence: &[f64], clusters: &Clusters) -> Cr2 {
        let p = self.beta.len();
        let m = &self.ginv.inv;
        let mut var = KahanSum::default();
        let mut d_sum = KahanSum::default();
        let mut l_sum = KahanSum::default();
        let mut dd = KahanSum::default();
        let mut dl = KahanSum::default();
        // Cross products for ||L||_F²: V'V (sparse by level pair), V'U (by level), U'U.
        let mut vv: HashMap<(u32, u32), f64> = HashMap::new();
        let mut vu: HashMap<u32, Array1<f64>> = HashMap::new();
        let mut uu = Array2::<f64>::zeros((p, p));
        for rows in &clusters.members {
            let ns = rows.len();
            // B_s = I − (P_D)_ss − X̃_s M X̃_s'
            let mut b = Array2::<f64>::zeros((ns, ns));
            let mx: Vec<Array1<f64>> = rows.iter().map(|&i| m.dot(&self.xt.row(i))).collect();
            for (a, &i) in rows.iter().enumerate() {
                for (c, &j) in rows.iter().enumerate().skip(a) {
                    let mut v = if a == c { 1.0 } else { 0.0 };
                    if self.group[i] == self.group[j] {
                        v -= self.sqw[i] * self.sqw[j] / self.group_w[self.group[i] as usize];
                    }
                    v -= self.xt.row(j).dot(&mx[a]);
                    b[[a, c]] = v;
                    b[[c, a]] = v;
                }
            }
            let a_s = sqrt_pinv(&b);
            let infl: Array1<f64> = rows.iter().map(|&i| influence[i]).collect();
            let res: Array1<f64> = rows.iter().map(|&i| self.et[i]).collect();
            let q = a_s.dot(&infl);
            let score = q.dot(&res);
            var.add(score * score);
            // Satterthwaite pieces: Ω = diag(q_s'q_s) − L with L = V W⁻¹ V' + U M U'.
            let d = q.dot(&q);
            let mut v_s: Vec<(u32, f64)> = Vec::new();
            for (a, &i) in rows.iter().enumerate() {
                let g = self.group[i];
                let val = self.sqw[i] * q[a];
                match v_s.iter_mut().find(|(h, _)| *h == g) {
                    Some((_, acc)) => *acc += val,
                    None => v_s.push((g, val)),
                }
            }
            let mut u_s = Array1::<f64>::zeros(p);
            for (a, &i) in rows.iter().enumerate() {
                u_s.scaled_add(q[a], &self.xt.row(i));
            }
            let mut l_ss = u_s.dot(&m.dot(&u_s));
            for &(g, v) in &v_s {
                l_ss += v * v / self.group_w[g as usize];
            }
            for &(g, vg) in &v_s {
                for &(h, vh) in &v_s {
                    *vv.entry((g, h)).or_insert(0.0) += vg * vh;
                }
                let e = vu.entry(g).or_insert_with(|| Array1::zeros(p));
                e.scaled_add(vg, &u_s);
            }
            for r in 0..p {
                for c in 0..p {
                    uu[[r, c]] += u_s[r] * u_s[c];
                }
            }
            d_sum.add(d);
            l_sum.add(l_ss);
            dd.add(d * d);
            dl.add(d * l_ss);
        }
        let mut ll = KahanSum::default();
        for (&(g, h), &v) in &vv {
            ll.add(v * v / (self.group_w[g as usize] * self.group_w[h as usize]));
        }
        for (&g, r) in &vu {
            ll.add(2.0 * r.dot(&m.dot(r)) / self.group_w[g as usize]);
        }
        let mu = m.dot(&uu);
        let mut tr = KahanSum::default();
        for r in 0..p {
            for c in 0..p {
                tr.add(mu[[r, c]] * mu[[c, r]]);
            }
        }
        ll.add(tr.value());
        let num = d_sum.value() - l_sum.value();
        let den = dd.value() - 2.0 * dl.value() + ll.value();
        Cr2 {
            variance: var.value(),
            df: num * num / den,
        }
    }
}

impl Fit {
    /// CR2 with weights, as clubSandwich computes it for a weighted `lm` (`inverse_var = FALSE`,
    /// identity working model) and estimatr pins its weighted CR2 to: with H = X(X'WX)⁻¹X'W,
    /// G_s = [(I − H)(I − H)']_ss, A_s = G_s^{+1/2}, V = Σ_s (a_s' A_s e_s)² for the original-scale
    /// influence a and residuals e; the df use Ω_st = u_s'[(I − H)(I − H)']_st u_t with u_s = A_s a_s.
    /// In the √w space (P̃ the symmetric projection), (I − H)(I − H)' = W^{-1/2} K W^{-1/2} with
    /// K = (I − P̃) W (I − P̃), whose blocks follow from per-level sums without the n x n matrix.
    /// The df needs every pair of clusters: O(G² p).
    fn cr2_weighted(&self, influence: &[f64], clusters: &Clusters) -> Result<Cr2, EstimateError> {
        const MAX_CLUSTERS: usize = 20_000;
        let g_count = clusters.len();
        if g_count > MAX_CLUSTERS {
            return Err(EstimateError::Design(format!(
                "weighted CR2 with {g_count} clusters: its Satterthwaite df needs every pair of \
                 clusters and is computed for at most {MAX_CLUSTERS}; use the firm weighting or CR1"
            )));
        }
        let p = self.beta.len();
        let m = &self.ginv.inv;
        let n = self.n();
        let w: Vec<f64> = self.sqw.iter().map(|s| s * s).collect();
        let ng = self.group_w.len();
        // Q_g = Σ_{k∈g} w_k² / W_g², r_g = Σ_{k∈g} w_k^{3/2} x̃_k, S = Σ_k w_k x̃_k x̃_k'.
        let mut q = vec![0.0; ng];
        let mut r = Array2::<f64>::zeros((ng, p));
        let mut s_mat = Array2::<f64>::zeros((p, p));
        for i in 0..n {
            let g = self.group[i] as usize;
            q[g] += w[i] * w[i];
            let row = self.xt.row(i);
            let f = w[i] * self.sqw[i];
            for k in 0..p {
                r[[g, k]] += f * row[k];
                for l in 0..p {
                    s_mat[[k, l]] += w[i] * row[k] * row[l];
                }
            }
        }
        for g in 0..ng {
            if self.group_w[g] > 0.0 {
                q[g] /= self.group_w[g] * self.group_w[g];
            }
        }
        let msm = m.dot(&s_mat).dot(m);
        // M r_g / W_g per level.
        let mr: Vec<Array1<f64>> = (0..ng)
            .map(|g| {
                if self.group_w[g] > 0.0 {
                    m.dot(&r.row(g)) / self.group_w[g]
                } else {
                    Array1::zeros(p)
                }
            })
            .collect();
        let mut var = KahanSum::default();
        struct Parts {
            delta: f64,
            groups: Vec<(u32, f64, f64)>,
            xa: Array1<f64>,
            xb: Array1<f64>,
            rho: Array1<f64>,
        }
        let mut parts: Vec<Parts> = Vec::with_capacity(g_count);
        for rows in &clusters.members {
            let ns = rows.len();
            let mut k_ss = Array2::<f64>::zeros((ns, ns));
            let mx: Vec<Array1<f64>> = rows.iter().map(|&i| m.dot(&self.xt.row(i))).collect();
            let msmx: Vec<Array1<f64>> = rows.iter().map(|&i| msm.dot(&self.xt.row(i))).collect();
            for (a, &i) in rows.iter().enumerate() {
                for (b, &j) in rows.iter().enumerate() {
                    let gi = self.group[i] as usize;
                    let gj = self.group[j] as usize;
                    let mut pij = self.xt.row(j).dot(&mx[a]);
                    if gi == gj {
                        pij += self.sqw[i] * self.sqw[j] / self.group_w[gi];
                    }
                    let mut pwp = self.xt.row(j).dot(&msmx[a]);
                    pwp += self.sqw[i] * mr[gi].dot(&self.xt.row(j));
                    pwp += self.sqw[j] * mr[gj].dot(&self.xt.row(i));
                    if gi == gj {
                        pwp += self.sqw[i] * self.sqw[j] * q[gi];
                    }
                    let mut v = -pij * w[j] - w[i] * pij + pwp;
                    if a == b {
                        v += w[i];
                    }
                    // G_s = W^{-1/2} K W^{-1/2}
                    k_ss[[a, b]] = v / (self.sqw[i] * self.sqw[j]);
                }
            }
            let a_s = sqrt_pinv(&k_ss);
            let a_orig: Array1<f64> = rows.iter().map(|&i| influence[i] * self.sqw[i]).collect();
            let e_orig: Array1<f64> = rows.iter().map(|&i| self.et[i] / self.sqw[i]).collect();
            let u = a_s.dot(&a_orig);
            let score = u.dot(&e_orig);
            var.add(score * score);
            // α = W^{-1/2} u, β = W α.
            let alpha: Vec<f64> = rows
                .iter()
                .zip(u.iter())
                .map(|(&i, v)| v / self.sqw[i])
                .collect();
            let mut groups: Vec<(u32, f64, f64)> = Vec::new();
            let mut xa = Array1::<f64>::zeros(p);
            let mut xb = Array1::<f64>::zeros(p);
            let mut delta = 0.0;
            for (a, &i) in rows.iter().enumerate() {
                let g = self.group[i];
                let beta = w[i] * alpha[a];
                delta += w[i] * alpha[a] * alpha[a];
                let (va, vb) = (self.sqw[i] * alpha[a], self.sqw[i] * beta);
                match groups.iter_mut().find(|(h, _, _)| *h == g) {
                    Some((_, x, y)) => {
                        *x += va;
                        *y += vb;
                    }
                    None => groups.push((g, va, vb)),
                }
                xa.scaled_add(alpha[a], &self.xt.row(i));
                xb.scaled_add(beta, &self.xt.row(i));
            }
            let mut rho = Array1::<f64>::zeros(p);
            for &(g, va, _) in &groups {
                if self.group_w[g as usize] > 0.0 {
                    rho.scaled_add(va / self.group_w[g as usize], &r.row(g as usize));
                }
            }
            parts.push(Parts {
                delta,
                groups,
                xa,
                xb,
                rho,
            });
        }
        // Ω_st = δ_st Δ_s − [α_s'(P̃W)_st α_t] − [α_s'(WP̃)_st α_t] + [α_s'(P̃WP̃)_st α_t].
        let ma: Vec<Array1<f64>> = parts.iter().map(|c| m.dot(&c.xa)).collect();
        let mb: Vec<Array1<f64>> = parts.iter().map(|c| m.dot(&c.xb)).collect();
        let msma: Vec<Array1<f64>> = parts.iter().map(|c| msm.dot(&c.xa)).collect();
        let mut trace = KahanSum::default();
        let mut sq = KahanSum::default();
        for s in 0..g_count {
            for t in s..g_count {
                let (cs, ct) = (&parts[s], &parts[t]);
                let mut v = -cs.xa.dot(&mb[t]) - cs.xb.dot(&ma[t])
                    + cs.xa.dot(&msma[t])
                    + cs.rho.dot(&ma[t])
                    + ct.rho.dot(&ma[s]);
                for &(g, va_s, vb_s) in &cs.groups {
                    if let Some(&(_, va_t, vb_t)) = ct.groups.iter().find(|(h, _, _)| *h == g) {
                        let wg = self.group_w[g as usize];
                        v += -va_s * vb_t / wg - vb_s * va_t / wg + va_s * va_t * q[g as usize];
                    }
                }
                if s == t {
                    v += cs.delta;
                    trace.add(v);
                    sq.add(v * v);
                } else {
                    sq.add(2.0 * v * v);
                }
            }
        }
        let tr = trace.value();
        Ok(Cr2 {
            variance: var.value(),
            df: tr * tr / sq.value(),
        })
    }
}

/// CR2 variance and its Satterthwaite degrees of freedom.
#[derive(Debug, Clone, Copy)]
pub struct Cr2 {
    /// The variance.
    pub variance: f64,
    /// Bell-McCaffrey degrees of freedom.
    pub df: f64,
}

/// Rows grouped by cluster.
#[derive(Debug, Clone)]
pub struct Clusters {
    /// Row indices of each cluster.
    pub members: Vec<Vec<usize>>,
}

impl Clusters {
    /// Groups rows by a cluster id per row (ids need not be dense).
    pub fn from_ids<T: Eq + std::hash::Hash + Clone>(ids: &[T]) -> Self {
        let mut index: HashMap<T, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let k = *index.entry(id.clone()).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            members[k].push(i);
        }
        Clusters { members }
    }

    /// Number of clusters.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when there are no clusters.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// Fits `y ~ X + factor(group)` by weighted least squares.
pub fn fit(problem: Problem<'_>) -> Result<Fit, EstimateError> {
    let n = problem.y.len();
    let p = problem.x.ncols();
    if problem.x.nrows() != n || problem.group.len() != n {
        return Err(EstimateError::Internal(
            "rows of y, X and the factor differ".into(),
        ));
    }
    let w: Vec<f64> = match problem.weights {
        Some(w) => {
            if w.len() != n {
                return Err(EstimateError::Internal("rows of weights differ".into()));
            }
            if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(EstimateError::InvalidData(format!(
                    "weight of row {} is {}; weights must be positive",
                    i + 1,
                    w[i]
                )));
            }
            // Normalise to mean 1 (invariant results; keeps magnitudes near 1).
            let mean = w.iter().sum::<f64>() / n as f64;
            w.iter().map(|v| v / mean).collect()
        }
        None => vec![1.0; n],
    };
    let ng = problem.n_groups;
    let mut group_w = vec![KahanSum::default(); ng];
    let mut ysum = vec![KahanSum::default(); ng];
    let mut xsum = vec![vec![KahanSum::default(); p]; ng];
    for i in 0..n {
        let g = problem.group[i] as usize;
        if g >= ng {
            return Err(EstimateError::Internal("factor level out of range".into()));
        }
        group_w[g].add(w[i]);
        ysum[g].add(w[i] * problem.y[i]);
        for k in 0..p {
            xsum[g][k].add(w[i] * problem.x[[i, k]]);
        }
    }
    let group_w: Vec<f64> = group_w.iter().map(KahanSum::value).collect();
    let levels_present = group_w.iter().filter(|v| **v > 0.0).count();
    let ybar: Vec<f64> = (0..ng)
        .map(|g| {
            if group_w[g] > 0.0 {
                ysum[g].value() / group_w[g]
            } else {
                0.0
            }
        })
        .collect();
    let mut xbar = Array2::<f64>::zeros((ng, p));
    for g in 0..ng {
        if group_w[g] > 0.0 {
            for k in 0..p {
                xbar[[g, k]] = xsum[g][k].value() / group_w[g];
            }
        }
    }
    let sqw: Vec<f64> = w.iter().map(|v| v.sqrt()).collect();
    let mut xt = Array2::<f64>::zeros((n, p));
    let mut yt = vec![0.0; n];
    for i in 0..n {
        let g = problem.group[i] as usize;
        yt[i] = sqw[i] * (problem.y[i] - ybar[g]);
        for k in 0..p {
            xt[[i, k]] = sqw[i] * (problem.x[[i, k]] - xbar[[g, k]]);
        }
    }
    let mut gram = Array2::<f64>::zeros((p, p));
    let mut xty = Array1::<f64>::zeros(p);
    for a in 0..p {
        let ca = xt.column(a);
        for b in 0..=a {
            let v = ksum(ca.iter().zip(xt.column(b).iter()).map(|(u, v)| u * v));
            gram[[a, b]] = v;
            gram[[b, a]] = v;
        }
        xty[a] = ksum(ca.iter().zip(&yt).map(|(u, v)| u * v));
    }
    let ginv = invert_gram(&gram);
    let beta = ginv.inv.dot(&xty);
    let mut et = vec![0.0; n];
    let mut leverage = vec![0.0; n];
    for i in 0..n {
        let row = xt.row(i);
        et[i] = yt[i] - row.dot(&beta);
        let g = problem.group[i] as usize;
        leverage[i] = w[i] / group_w[g] + row.dot(&ginv.inv.dot(&row));
    }
    let fe: Vec<f64> = (0..ng).map(|g| ybar[g] - xbar.row(g).dot(&beta)).collect();
    Ok(Fit {
        sqw,
        group: problem.group.to_vec(),
        group_w,
        xt,
        et,
        beta,
        ginv,
        leverage,
        xbar,
        fe,
        levels_present,
    })
}

/// √w-transformed outcome, for [`Fit::value`]: θ = Σ ã_i √w_i y_i.
pub fn transformed_y(fit: &Fit, y: ArrayView1<f64>) -> Vec<f64> {
    fit.sqw.iter().zip(y.iter()).map(|(s, v)| s * v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, array};

    /// Dense reference: OLS with explicit dummies, HC2 by the textbook formula.
    fn dense_hc2(y: &[f64], x: &Array2<f64>, w: &[f64], k: usize) -> (f64, f64) {
        let n = y.len();
        let xw = Array2::from_shape_fn(x.dim(), |(i, j)| x[[i, j]] * w[i].sqrt());
        let yw: Array1<f64> = (0..n).map(|i| y[i] * w[i].sqrt()).collect();
        let g = xw.t().dot(&xw);
        let gi = invert_gram(&g).inv;
        let b = gi.dot(&xw.t().dot(&yw));
        let e = &yw - &xw.dot(&b);
        let mut meat = Array2::<f64>::zeros(g.dim());
        for i in 0..n {
            let h = xw.row(i).dot(&gi.dot(&xw.row(i)));
            let r = xw.row(i);
            for a in 0..g.nrows() {
                for c in 0..g.nrows() {
                    meat[[a, c]] += r[a] * r[c] * e[i] * e[i] / (1.0 - h);
                }
            }
        }
        let v = gi.dot(&meat).dot(&gi);
        (b[k], v[[k, k]])
    }

    #[test]
    fn absorbed_factor_matches_explicit_dummies_with_weights() {
        let y = [3.0, 4.5, 2.0, 7.0, 6.1, 5.5, 9.0, 8.2, 7.7, 4.4];
        let z = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let b = [1.0, 2.0, 0.5, 3.0, 2.2, 1.9, 4.0, 3.1, 2.9, 1.2];
        let g: [u32; 10] = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2];
        let w = [1.0, 2.0, 0.5, 1.5, 1.0, 3.0, 0.7, 1.1, 2.2, 0.9];
        let x = Array2::from_shape_fn((10, 2), |(i, j)| if j == 0 { z[i] } else { b[i] });
        let f = fit(Problem {
            y: ArrayView1::from(&y),
            x: x.view(),
            group: &g,
            n_groups: 3,
            weights: Some(ArrayView1::from(&w)),
        })
        .expect("fit");
        let infl = f.influence(&[0.0; 3], array![1.0, 0.0].view());
        let est = f.value(&infl, &transformed_y(&f, ArrayView1::from(&y)));
        let (var, _) = f.hc2(&infl);
        let dense = Array2::from_shape_fn((10, 5), |(i, j)| match j {
            0 => z[i],
            1 => b[i],
            _ => f64::from(u8::from(g[i] as usize == j - 2)),
        });
        let (eb, ev) = dense_hc2(&y, &dense, &w, 0);
        assert!((est - eb).abs() < 1e-12 * eb.abs(), "{est} {eb}");
        assert!((f.beta[0] - eb).abs() < 1e-12 * eb.abs());
        assert!((var - ev).abs() < 1e-10 * ev, "{var} {ev}");
    }
}
