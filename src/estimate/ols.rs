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
pub use super::cr2::Cr2;
use super::cr2::{self, ClusterRows, Cr2Design, Roots};
use super::linalg::{GramInverse, KahanSum, invert_gram, ksum};

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
    /// as `0..n_clusters` ([`super::cr2`], cluster by cluster).
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
        let weighted = self.sqw.iter().any(|s| *s != first);
        let design = FitDesign::new(self, influence, clusters, weighted);
        let out = if weighted {
            cr2::cr2_weighted(&design, roots, None)?
        } else {
            cr2::cr2_equal(&design, roots, None)?
        };
        out.into_iter()
            .next()
            .ok_or_else(|| EstimateError::Internal("no CR2 estimand".into()))
    }
}

/// A fitted regression, one estimand and its clusters, as [`super::cr2`] reads them: each
/// cluster's rows gathered from the dense projected design, and (weighted) the per-level sums
/// q_g = Σ_{k∈g} w_k²/W_g² and r_g = Σ_{k∈g} w_k^{3/2} x̃_k over every row, since the factor's
/// levels may span clusters (strata across kommuner).
struct FitDesign<'a> {
    fit: &'a Fit,
    influence: &'a [f64],
    clusters: &'a Clusters,
    q: Vec<f64>,
    r: Array2<f64>,
}

impl<'a> FitDesign<'a> {
    fn new(fit: &'a Fit, influence: &'a [f64], clusters: &'a Clusters, weighted: bool) -> Self {
        let p = fit.beta.len();
        let ng = fit.group_w.len();
        let (mut q, mut r) = (Vec::new(), Array2::zeros((0, p)));
        if weighted {
            q = vec![0.0; ng];
            r = Array2::<f64>::zeros((ng, p));
            for i in 0..fit.n() {
                let g = fit.group[i] as usize;
                let w = fit.sqw[i] * fit.sqw[i];
                q[g] += w * w;
                r.row_mut(g).scaled_add(w * fit.sqw[i], &fit.xt.row(i));
            }
            for g in 0..ng {
                if fit.group_w[g] > 0.0 {
                    q[g] /= fit.group_w[g] * fit.group_w[g];
                }
            }
        }
        FitDesign {
            fit,
            influence,
            clusters,
            q,
            r,
        }
    }
}

impl Cr2Design for FitDesign<'_> {
    fn m(&self) -> &Array2<f64> {
        &self.fit.ginv.inv
    }

    fn n_estimands(&self) -> usize {
        1
    }

    fn n_clusters(&self) -> usize {
        self.clusters.len()
    }

    fn nested(&self) -> bool {
        false
    }

    fn level_w(&self, g: u32) -> f64 {
        self.fit.group_w[g as usize]
    }

    fn rows(&self, s: usize) -> ClusterRows {
        let rows = &self.clusters.members[s];
        let p = self.fit.beta.len();
        let mut xt = Array2::<f64>::zeros((rows.len(), p));
        for (a, &i) in rows.iter().enumerate() {
            xt.row_mut(a).assign(&self.fit.xt.row(i));
        }
        ClusterRows {
            sqw: rows.iter().map(|&i| self.fit.sqw[i]).collect(),
            level: rows.iter().map(|&i| self.fit.group[i]).collect(),
            xt,
            et: rows.iter().map(|&i| self.fit.et[i]).collect(),
            infl: Array2::from_shape_fn((rows.len(), 1), |(a, _)| self.influence[rows[a]]),
        }
    }

    fn level_sums(&self, g: u32) -> Option<(f64, ArrayView1<'_, f64>)> {
        Some((self.q[g as usize], self.r.row(g as usize)))
    }

    fn s_mat(&self) -> Array2<f64> {
        let p = self.fit.beta.len();
        let mut s = Array2::<f64>::zeros((p, p));
        for i in 0..self.fit.n() {
            let w = self.fit.sqw[i] * self.fit.sqw[i];
            let row = self.fit.xt.row(i);
            for k in 0..p {
                for l in 0..p {
                    s[[k, l]] += w * row[k] * row[l];
                }
            }
        }
        s
    }
}

#[cfg(test)]
impl Fit {
    /// The weighted CR2's Satterthwaite df summed over every pair of clusters (the G² form the
    /// low-rank one replaced), kept as its test oracle.
    pub(crate) fn cr2_weighted_pairwise_df(&self, influence: &[f64], clusters: &Clusters) -> f64 {
        let design = FitDesign::new(self, influence, clusters, true);
        let (parts, msm) = cr2::weighted_parts(&design);
        let parts: Vec<&cr2::WeightedOut> = parts.iter().map(|o| &o[0]).collect();
        let m = &self.ginv.inv;
        let p = m.nrows();
        let split =
            |c: &cr2::WeightedOut, k: usize| ArrayView1::from(&c.f[k * p..(k + 1) * p]).to_owned();
        let xa: Vec<Array1<f64>> = parts.iter().map(|c| split(c, 0)).collect();
        let xb: Vec<Array1<f64>> = parts.iter().map(|c| split(c, 1)).collect();
        let rho: Vec<Array1<f64>> = parts.iter().map(|c| split(c, 2)).collect();
        let g_count = parts.len();
        let ma: Vec<Array1<f64>> = xa.iter().map(|x| m.dot(x)).collect();
        let mb: Vec<Array1<f64>> = xb.iter().map(|x| m.dot(x)).collect();
        let msma: Vec<Array1<f64>> = xa.iter().map(|x| msm.dot(x)).collect();
        let mut trace = KahanSum::default();
        let mut sq = KahanSum::default();
        for s in 0..g_count {
            for t in s..g_count {
                let (cs, ct) = (parts[s], parts[t]);
                let mut v = -xa[s].dot(&mb[t]) - xb[s].dot(&ma[t])
                    + xa[s].dot(&msma[t])
                    + rho[s].dot(&ma[t])
                    + rho[t].dot(&ma[s]);
                for &(g, va_s, vb_s) in &cs.groups {
                    if let Some(&(_, va_t, vb_t)) = ct.groups.iter().find(|(h, _, _)| *h == g) {
                        let wg = self.group_w[g as usize];
                        v += -va_s * vb_t / wg - vb_s * va_t / wg
                            + va_s * va_t * design.q[g as usize];
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
                crate::on_threads(threads, || fit.cr2(&infl, &clusters).expect("cr2"))
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
