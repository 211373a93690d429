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
use rayon::prelude::*;

use super::EstimateError;
use super::linalg::{GramInverse, KahanSum, LowRankRoot, invert_gram, ksum, sqrt_pinv};

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
        self.cr2_roots(influence, clusters, Roots::Auto)
    }

    /// [`Fit::cr2`] with the choice of root per cluster made by `roots`.
    fn cr2_roots(
        &self,
        influence: &[f64],
        clusters: &Clusters,
        roots: Roots,
    ) -> Result<Cr2, EstimateError> {
        let first = self.sqw.first().copied().unwrap_or(1.0);
        if self.sqw.iter().any(|s| *s != first) {
            return self.cr2_weighted(influence, clusters, roots);
        }
        Ok(self.cr2_equal_weights(influence, clusters, roots))
    }

    /// CR2 with equal weights: A_s = [(I − H)_ss]^{+1/2}; the Satterthwaite df from low-rank
    /// pieces, so it works for any number of clusters.
    fn cr2_equal_weights(&self, influence: &[f64], clusters: &Clusters, roots: Roots) -> Cr2 {
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
        // The clusters' adjustments in parallel (each on its own rows), collected in cluster
        // order; everything summed over clusters below runs in that order, as on one thread.
        let roots: Vec<Array1<f64>> = clusters
            .members
            .par_iter()
            .map(|rows| {
                let ns = rows.len();
                let infl: Array1<f64> = rows.iter().map(|&i| influence[i]).collect();
                // A_s infl with B_s = I − (P_D)_ss − X̃_s M X̃_s': B_s = I + Y C Y' with Y the
                // cluster's level indicators (times √w) and X̃_s, C = −diag(1/W_g, M).
                let levels = self.levels_of(rows);
                if roots.low_rank(ns, levels.len() + p) {
                    let (y, mut c) = self.cluster_basis(rows, &levels);
                    c.mapv_inplace(|v| -v);
                    LowRankRoot::new(&y, &c).apply(&infl)
                } else {
                    let mut b = Array2::<f64>::zeros((ns, ns));
                    let mx: Vec<Array1<f64>> =
                        rows.iter().map(|&i| m.dot(&self.xt.row(i))).collect();
                    for (a, &i) in rows.iter().enumerate() {
                        for (c, &j) in rows.iter().enumerate().skip(a) {
                            let mut v = if a == c { 1.0 } else { 0.0 };
                            if self.group[i] == self.group[j] {
                                v -= self.sqw[i] * self.sqw[j]
                                    / self.group_w[self.group[i] as usize];
                            }
                            v -= self.xt.row(j).dot(&mx[a]);
                            b[[a, c]] = v;
                            b[[c, a]] = v;
                        }
                    }
                    sqrt_pinv(&b).dot(&infl)
                }
            })
            .collect();
        for (rows, q) in clusters.members.iter().zip(roots) {
            let res: Array1<f64> = rows.iter().map(|&i| self.et[i]).collect();
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
    /// The df needs tr(Ω) and ||Ω||_F²; [`satterthwaite_low_rank`] gets both from sums over the
    /// clusters in about G·p² (the G x G matrix Ω is never formed), so there is no limit on G.
    fn cr2_weighted(
        &self,
        influence: &[f64],
        clusters: &Clusters,
        roots: Roots,
    ) -> Result<Cr2, EstimateError> {
        let (variance, parts, msm, q) = self.cr2_weighted_parts(influence, clusters, roots);
        let (tr, sq) = satterthwaite_low_rank(&parts, &self.ginv.inv, &msm, &q, &self.group_w);
        Ok(Cr2 {
            variance,
            df: tr * tr / sq,
        })
    }

    /// The weighted CR2 variance, per cluster the pieces of its Satterthwaite df, and the
    /// matrices they are read with: MSM and q_g.
    fn cr2_weighted_parts(
        &self,
        influence: &[f64],
        clusters: &Clusters,
        roots: Roots,
    ) -> (f64, Vec<Parts>, Array2<f64>, Vec<f64>) {
        let g_count = clusters.len();
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
        let mut parts: Vec<Parts> = Vec::with_capacity(g_count);
        let roots: Vec<Array1<f64>> = clusters
            .members
            .par_iter()
            .map(|rows| {
                let ns = rows.len();
                let a_orig: Array1<f64> =
                    rows.iter().map(|&i| influence[i] * self.sqw[i]).collect();
                let levels = self.levels_of(rows);
                if roots.low_rank(ns, 2 * (levels.len() + p)) {
                    // G_s = I − Ya C1 Yb' − Yb C1 Ya' + Ya Φ Ya' with Y1 = [level indicators × √w,
                    // X̃_s], Ya = W_s^{-1/2} Y1, Yb = W_s^{1/2} Y1, C1 = diag(1/W_g, M) and Φ the
                    // blocks q_g, M r_g / W_g and MSM: G_s = I + [Ya Yb] [[Φ, −C1], [−C1, 0]] [Ya Yb]'.
                    let (y1, c1) = self.cluster_basis(rows, &levels);
                    let k1 = y1.ncols();
                    let nl = levels.len();
                    let mut y = Array2::<f64>::zeros((ns, 2 * k1));
                    for (a, &i) in rows.iter().enumerate() {
                        for col in 0..k1 {
                            y[[a, col]] = y1[[a, col]] / self.sqw[i];
                            y[[a, k1 + col]] = y1[[a, col]] * self.sqw[i];
                        }
                    }
                    let mut c = Array2::<f64>::zeros((2 * k1, 2 * k1));
                    for (x, &g) in levels.iter().enumerate() {
                        c[[x, x]] = q[g as usize];
                        for col in 0..p {
                            c[[x, nl + col]] = mr[g as usize][col];
                            c[[nl + col, x]] = mr[g as usize][col];
                        }
                    }
                    for r in 0..p {
                        for col in 0..p {
                            c[[nl + r, nl + col]] = msm[[r, col]];
                        }
                    }
                    for r in 0..k1 {
                        for col in 0..k1 {
                            c[[r, k1 + col]] = -c1[[r, col]];
                            c[[k1 + r, col]] = -c1[[r, col]];
                        }
                    }
                    LowRankRoot::new(&y, &c).apply(&a_orig)
                } else {
                    let mut k_ss = Array2::<f64>::zeros((ns, ns));
                    let mx: Vec<Array1<f64>> =
                        rows.iter().map(|&i| m.dot(&self.xt.row(i))).collect();
                    let msmx: Vec<Array1<f64>> =
                        rows.iter().map(|&i| msm.dot(&self.xt.row(i))).collect();
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
                    sqrt_pinv(&k_ss).dot(&a_orig)
                }
            })
            .collect();
        for (rows, u) in clusters.members.iter().zip(roots) {
            let e_orig: Array1<f64> = rows.iter().map(|&i| self.et[i] / self.sqw[i]).collect();
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
        (var.value(), parts, msm, q)
    }
}

/// Use the low-rank root of a cluster's CR2 adjustment when the cluster has more than this many
/// times as many rows as the update has columns; below it the dense n x n root is as cheap.
const LOW_RANK_FACTOR: usize = 2;

/// Which root of each cluster's CR2 adjustment to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Roots {
    /// The low-rank root for large clusters, the dense one for small ones.
    Auto,
    /// The dense root everywhere (the tests' oracle).
    #[cfg(test)]
    Dense,
}

impl Roots {
    /// Whether a cluster of `rows` rows takes the low-rank root of an update with `cols` columns.
    fn low_rank(self, rows: usize, cols: usize) -> bool {
        match self {
            Roots::Auto => rows > LOW_RANK_FACTOR * cols,
            #[cfg(test)]
            Roots::Dense => false,
        }
    }
}

impl Fit {
    /// The levels of the absorbed factor among `rows`, in order of first appearance.
    fn levels_of(&self, rows: &[usize]) -> Vec<u32> {
        let mut levels: Vec<u32> = Vec::new();
        for &i in rows {
            let g = self.group[i];
            if !levels.contains(&g) {
                levels.push(g);
            }
        }
        levels
    }

    /// For a cluster's rows: Y1 = [√w_i on the rows of each level, X̃_s] (rows x (levels + p)) and
    /// C1 = diag(1/W_g, M), so that the cluster's block of the projection is Y1 C1 Y1'.
    fn cluster_basis(&self, rows: &[usize], levels: &[u32]) -> (Array2<f64>, Array2<f64>) {
        let p = self.beta.len();
        let nl = levels.len();
        let mut y = Array2::<f64>::zeros((rows.len(), nl + p));
        for (a, &i) in rows.iter().enumerate() {
            let x = levels.iter().position(|&g| g == self.group[i]).unwrap_or(0);
            y[[a, x]] = self.sqw[i];
            for col in 0..p {
                y[[a, nl + col]] = self.xt[[i, col]];
            }
        }
        let mut c = Array2::<f64>::zeros((nl + p, nl + p));
        for (x, &g) in levels.iter().enumerate() {
            c[[x, x]] = 1.0 / self.group_w[g as usize];
        }
        for r in 0..p {
            for col in 0..p {
                c[[nl + r, nl + col]] = self.ginv.inv[[r, col]];
            }
        }
        (y, c)
    }
}

/// One cluster's pieces of Ω for the weighted Satterthwaite df (see [`Fit::cr2`]): Ω_st =
/// δ_st Δ_s + L_st with L_st = f_s' K f_t + Σ_g h_s(g)' Q_g h_t(g), where f_s = (xa, xb, ρ) and
/// h_s(g) = (va, vb) for each level g of the absorbed factor in the cluster.
struct Parts {
    delta: f64,
    groups: Vec<(u32, f64, f64)>,
    xa: Array1<f64>,
    xb: Array1<f64>,
    rho: Array1<f64>,
}

/// tr(Ω) and ||Ω||_F² of the weighted CR2's G x G matrix Ω without forming it: with Z the clusters'
/// stacked (f_s, h_s) and B = diag(K, Q), L = Z B Z', so Σ_st L_st² = tr((B Z'Z)²), and Z'Z has a
/// 3p x 3p dense block, a 3p x 2 block per level and 2 x 2 blocks for levels that share a
/// cluster. The cost is about G·p² + Σ_s (levels in s)², not G² (issue 12).
///
/// `K = [[MSM, −M, M], [−M, 0, 0], [M, 0, 0]]` and `Q_g = [[q_g, −1/W_g], [−1/W_g, 0]]`.
fn satterthwaite_low_rank(
    parts: &[Parts],
    m: &Array2<f64>,
    msm: &Array2<f64>,
    q: &[f64],
    group_w: &[f64],
) -> (f64, f64) {
    let p = m.nrows();
    let p3 = 3 * p;
    // K v for v = (a, b, r): (MSM a + M (r − b), −M a, M a).
    let kdot = |v: &[f64]| -> Vec<f64> {
        let a = ArrayView1::from(&v[..p]);
        let b = ArrayView1::from(&v[p..2 * p]);
        let r = ArrayView1::from(&v[2 * p..]);
        let ma = m.dot(&a);
        let top = msm.dot(&a) + m.dot(&(&r - &b));
        let mut out = Vec::with_capacity(p3);
        out.extend(top.iter());
        out.extend(ma.iter().map(|x| -x));
        out.extend(ma.iter());
        out
    };
    let qg = |g: u32| -> [[f64; 2]; 2] {
        let g = g as usize;
        let inv_w = 1.0 / group_w[g];
        [[q[g], -inv_w], [-inv_w, 0.0]]
    };
    let dot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
    let mut trace = KahanSum::default();
    let mut sq = KahanSum::default();
    let mut pff = Array2::<f64>::zeros((p3, p3));
    // Per level: X_g = Σ_s f_s h_s(g)' as its two columns.
    let mut xg: HashMap<u32, [Vec<f64>; 2]> = HashMap::new();
    // Per pair of levels sharing a cluster: P_gh = Σ_s h_s(g) h_s(h)'.
    let mut pgh: HashMap<(u32, u32), [[f64; 2]; 2]> = HashMap::new();
    let mut f = vec![0.0; p3];
    for part in parts {
        f[..p].copy_from_slice(part.xa.as_slice().unwrap_or(&part.xa.to_vec()));
        f[p..2 * p].copy_from_slice(part.xb.as_slice().unwrap_or(&part.xb.to_vec()));
        f[2 * p..].copy_from_slice(part.rho.as_slice().unwrap_or(&part.rho.to_vec()));
        let kf = kdot(&f);
        let mut l_ss = dot(&f, &kf);
        for &(g, va, vb) in &part.groups {
            let qm = qg(g);
            l_ss += qm[0][0] * va * va + 2.0 * qm[0][1] * va * vb + qm[1][1] * vb * vb;
        }
        trace.add(part.delta + l_ss);
        sq.add(part.delta * part.delta + 2.0 * part.delta * l_ss);
        for (r, &fr) in f.iter().enumerate() {
            if fr == 0.0 {
                continue;
            }
            for (c, &fc) in f.iter().enumerate() {
                pff[[r, c]] += fr * fc;
            }
        }
        for &(g, va, vb) in &part.groups {
            let cols = xg
                .entry(g)
                .or_insert_with(|| [vec![0.0; p3], vec![0.0; p3]]);
            for (k, &fk) in f.iter().enumerate() {
                cols[0][k] += va * fk;
                cols[1][k] += vb * fk;
            }
            for &(h, wa, wb) in &part.groups {
                let e = pgh.entry((g, h)).or_insert([[0.0; 2]; 2]);
                e[0][0] += va * wa;
                e[0][1] += va * wb;
                e[1][0] += vb * wa;
                e[1][1] += vb * wb;
            }
        }
    }
    // tr((K P_FF)²).
    let mut kp = Array2::<f64>::zeros((p3, p3));
    for c in 0..p3 {
        let col: Vec<f64> = pff.column(c).to_vec();
        for (r, v) in kdot(&col).into_iter().enumerate() {
            kp[[r, c]] = v;
        }
    }
    let mut ll = KahanSum::default();
    for r in 0..p3 {
        for c in 0..p3 {
            ll.add(kp[[r, c]] * kp[[c, r]]);
        }
    }
    // 2 Σ_g tr(K X_g Q_g X_g'), in a fixed order of levels.
    let mut levels: Vec<&u32> = xg.keys().collect();
    levels.sort_unstable();
    for g in levels {
        let cols = &xg[g];
        let qm = qg(*g);
        let k0 = kdot(&cols[0]);
        let k1 = kdot(&cols[1]);
        let t = qm[0][0] * dot(&cols[0], &k0)
            + qm[0][1] * (dot(&cols[0], &k1) + dot(&cols[1], &k0))
            + qm[1][1] * dot(&cols[1], &k1);
        ll.add(2.0 * t);
    }
    // Σ_{g,h} tr(Q_g P_gh Q_h P_gh').
    let mut pairs: Vec<_> = pgh.into_iter().collect();
    pairs.sort_unstable_by_key(|(k, _)| *k);
    let mul = |a: &[[f64; 2]; 2], b: &[[f64; 2]; 2]| -> [[f64; 2]; 2] {
        let mut o = [[0.0; 2]; 2];
        for (i, row) in o.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = a[i][0] * b[0][j] + a[i][1] * b[1][j];
            }
        }
        o
    };
    for ((g, h), pm) in &pairs {
        let (g, h) = (*g, *h);
        let pt = [[pm[0][0], pm[1][0]], [pm[0][1], pm[1][1]]];
        let prod = mul(&mul(&mul(&qg(g), pm), &qg(h)), &pt);
        ll.add(prod[0][0] + prod[1][1]);
    }
    sq.add(ll.value());
    (trace.value(), sq.value())
}

#[cfg(test)]
impl Fit {
    /// The weighted CR2's Satterthwaite df summed over every pair of clusters (the G² form the
    /// low-rank one replaced), kept as its test oracle.
    pub(crate) fn cr2_weighted_pairwise_df(&self, influence: &[f64], clusters: &Clusters) -> f64 {
        let (_, parts, msm, q) = self.cr2_weighted_parts(influence, clusters, Roots::Auto);
        let m = &self.ginv.inv;
        let g_count = parts.len();
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
        tr * tr / sq.value()
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

#[cfg(test)]
mod low_rank_tests {
    use super::*;
    use proptest::prelude::*;

    /// Uniform numbers in [0, 1) from a small deterministic generator (splitmix64), so that
    /// proptest's seed decides the whole design and shrinks it.
    pub(super) fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A random weighted regression with an absorbed factor whose levels may span clusters
    /// (strata across kommuner) or nest in them (firms in kommuner), and its clusters.
    fn design(
        n: usize,
        seed: u64,
        n_groups: usize,
        n_clusters: usize,
        nested: bool,
    ) -> (Fit, Clusters, Vec<f64>) {
        let mut next = uniform(seed);
        let group: Vec<u32> = (0..n).map(|i| (i % n_groups) as u32).collect();
        let cluster: Vec<u32> = (0..n)
            .map(|i| {
                if nested {
                    (group[i] as usize % n_clusters) as u32
                } else {
                    (next() * n_clusters as f64) as u32 % n_clusters as u32
                }
            })
            .collect();
        let x = Array2::from_shape_fn((n, 3), |(i, j)| match j {
            0 => f64::from(u8::from(next() < 0.5)),
            1 => next() * 4.0 - 2.0,
            _ => (i % 5) as f64 + next(),
        });
        let y: Array1<f64> = (0..n)
            .map(|i| x[[i, 0]] * 0.7 + x[[i, 1]] + next() * 3.0)
            .collect();
        let w: Array1<f64> = (0..n).map(|_| 0.2 + next() * 5.0).collect();
        let fit = fit(Problem {
            y: y.view(),
            x: x.view(),
            group: &group,
            n_groups,
            weights: Some(w.view()),
        })
        .expect("fit");
        let mut d = Array1::<f64>::zeros(3);
        d[0] = 1.0;
        let infl = fit.influence(&vec![0.0; n_groups], d.view());
        (fit, Clusters::from_ids(&cluster), infl)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The low-rank Satterthwaite df of the weighted CR2 equals the sum over every pair of
        /// clusters, whether the absorbed levels nest in the clusters or span them.
        #[test]
        fn weighted_cr2_df_low_rank_equals_pairwise(
            n in 24usize..120,
            seed in any::<u64>(),
            n_groups in 2usize..9,
            n_clusters in 3usize..14,
            nested in any::<bool>(),
        ) {
            let (fit, clusters, infl) = design(n, seed, n_groups, n_clusters, nested);
            prop_assume!(clusters.len() >= 2);
            let fast = fit.cr2(&infl, &clusters).expect("cr2").df;
            let slow = fit.cr2_weighted_pairwise_df(&infl, &clusters);
            prop_assume!(slow.is_finite());
            let rel = (fast - slow).abs() / slow.abs().max(1e-300);
            prop_assert!(rel < 1e-10, "low-rank {fast} pairwise {slow} rel {rel}");
        }
    }
}

#[cfg(test)]
mod low_rank_root_tests {
    use super::*;
    use proptest::prelude::*;

    /// Rows in a few large clusters (several levels each, or levels crossing clusters), with or
    /// without weights: the low-rank root and the dense root give the same CR2 variance and df.
    fn compare(n: usize, seed: u64, n_groups: usize, n_clusters: usize, weighted: bool) {
        let mut next = super::low_rank_tests::uniform(seed);
        let group: Vec<u32> = (0..n).map(|i| ((i * 7) % n_groups) as u32).collect();
        let cluster: Vec<u32> = (0..n).map(|i| (i % n_clusters) as u32).collect();
        let x = Array2::from_shape_fn((n, 2), |(i, j)| match j {
            0 => f64::from(u8::from(next() < 0.5)),
            _ => (i % 3) as f64 + next(),
        });
        let y: Array1<f64> = (0..n).map(|i| x[[i, 0]] * 0.3 + next() * 2.0).collect();
        let w: Array1<f64> = (0..n).map(|_| 0.5 + next() * 3.0).collect();
        let fit = fit(Problem {
            y: y.view(),
            x: x.view(),
            group: &group,
            n_groups,
            weights: weighted.then(|| w.view()),
        })
        .expect("fit");
        let infl = fit.influence(&vec![0.0; n_groups], ndarray::array![1.0, 0.0].view());
        let clusters = Clusters::from_ids(&cluster);
        let fast = fit.cr2(&infl, &clusters).expect("cr2");
        let slow = fit.cr2_roots(&infl, &clusters, Roots::Dense).expect("cr2");
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-300);
        assert!(
            rel(fast.variance, slow.variance) < 1e-10 && rel(fast.df, slow.df) < 1e-10,
            "low-rank {fast:?} dense {slow:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn the_low_rank_root_equals_the_dense_root(
            n in 60usize..160,
            seed in any::<u64>(),
            n_groups in 2usize..6,
            n_clusters in 2usize..5,
            weighted in any::<bool>(),
        ) {
            compare(n, seed, n_groups, n_clusters, weighted);
        }
    }

    /// The clusters' roots run in parallel, and the sums over clusters in cluster order, so one
    /// thread and four give the same bits.
    #[test]
    fn cr2_is_bit_identical_on_one_thread_and_on_four() {
        for weighted in [false, true] {
            let mut next = super::low_rank_tests::uniform(11);
            let n = 400;
            let group: Vec<u32> = (0..n).map(|i| (i % 9) as u32).collect();
            let cluster: Vec<u32> = (0..n).map(|i| (i % 37) as u32).collect();
            let x = Array2::from_shape_fn((n, 2), |(i, j)| {
                if j == 0 {
                    f64::from(u8::from(i % 37 < 18))
                } else {
                    next()
                }
            });
            let y: Array1<f64> = (0..n).map(|_| next()).collect();
            let w: Array1<f64> = (0..n).map(|_| 0.5 + next()).collect();
            let fit = fit(Problem {
                y: y.view(),
                x: x.view(),
                group: &group,
                n_groups: 9,
                weights: weighted.then(|| w.view()),
            })
            .expect("fit");
            let infl = fit.influence(&[0.0; 9], ndarray::array![1.0, 0.0].view());
            let clusters = Clusters::from_ids(&cluster);
            let on = |threads: usize| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("pool")
                    .install(|| fit.cr2(&infl, &clusters).expect("cr2"))
            };
            let (one, four) = (on(1), on(4));
            assert_eq!(
                one.variance.to_bits(),
                four.variance.to_bits(),
                "{weighted}"
            );
            assert_eq!(one.df.to_bits(), four.df.to_bits(), "{weighted}");
        }
    }

    /// A level nested in one cluster makes the adjustment singular (an eigenvalue 0 that the
    /// clamp drops); the two roots still agree.
    #[test]
    fn a_singular_adjustment_is_clamped_the_same_way() {
        for weighted in [false, true] {
            compare(90, 7, 3, 3, weighted);
        }
    }
}
