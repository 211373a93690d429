//! CR2 (Bell-McCaffrey) variances and their Satterthwaite degrees of freedom, cluster by cluster.
//!
//! A regression with one absorbed factor describes itself through [`Cr2Design`]: the inverse Gram
//! M, the weights of the factor's levels and, for each cluster, that cluster's rows ([`ClusterRows`]:
//! √w, level, projected rows X̃, residuals and the estimands' influence vectors). The engine takes
//! each cluster's adjustment A_s from those rows alone (a dense root for small clusters, the
//! low-rank root [`LowRankRoot`] for large ones, or the design's own exact shortcut
//! [`Cr2Design::equal_fast`]), and the Satterthwaite df from per-cluster pieces summed over the
//! clusters (about G·p², never a G x G matrix). The clusters run in chunks of a fixed size on every
//! core, and the chunks' results are summed in cluster order, so one thread and many give the same
//! bits. Nothing here holds more than one chunk of clusters at a time.
//!
//! Several estimands of one regression (the event study's coefficients) share one pass: the
//! influence of a cluster is a matrix with one column per estimand.

use std::collections::HashMap;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView1, Axis};
use rayon::prelude::*;

use super::EstimateError;
use super::linalg::{KahanSum, LowRankRoot, sqrt_pinv, sqrt_pinv_apply};
use crate::progress::Progress;

/// CR2 variance and its Satterthwaite degrees of freedom.
#[derive(Debug, Clone, Copy)]
pub struct Cr2 {
    /// The variance.
    pub variance: f64,
    /// Bell-McCaffrey degrees of freedom.
    pub df: f64,
}

/// One cluster's rows, as CR2 reads them (every vector in the √w-transformed space).
#[derive(Debug, Clone)]
pub struct ClusterRows {
    /// √w per row.
    pub sqw: Vec<f64>,
    /// Level of the absorbed factor per row.
    pub level: Vec<u32>,
    /// Projected rows X̃ (rows x p).
    pub xt: Array2<f64>,
    /// Residuals.
    pub et: Vec<f64>,
    /// Influence of each estimand (rows x estimands).
    pub infl: Array2<f64>,
}

/// One cluster's pieces of the equal-weights CR2 for one estimand: the score q'e, q'q, the
/// per-level sums v_g = Σ √w q, u = X̃'q and u'Mu, with q = A_s a_s.
#[derive(Debug, Clone)]
pub struct EqualOut {
    /// q'e.
    pub score: f64,
    /// q'q.
    pub d: f64,
    /// Σ_{rows of level g} √w q, per level in the cluster.
    pub v: Vec<(u32, f64)>,
    /// X̃'q.
    pub u: Array1<f64>,
    /// u'Mu.
    pub umu: f64,
}

/// A regression with one absorbed factor, seen cluster by cluster.
pub trait Cr2Design: Sync {
    /// (X̃'X̃)⁻¹, p x p (zero rows and columns for dropped columns).
    fn m(&self) -> &Array2<f64>;
    /// Number of estimands (columns of [`ClusterRows::infl`]).
    fn n_estimands(&self) -> usize;
    /// Number of clusters.
    fn n_clusters(&self) -> usize;
    /// Whether every level of the factor lies within one cluster (firms within clusters of firms).
    fn nested(&self) -> bool;
    /// Sum of weights of a level.
    fn level_w(&self, g: u32) -> f64;
    /// Cluster `s`'s rows.
    fn rows(&self, s: usize) -> ClusterRows;
    /// Weighted CR2 only: q_g = Σ_{k∈g} w_k²/W_g² and r_g = Σ_{k∈g} w_k^{3/2} x̃_k of a level, when
    /// the level may have rows outside the cluster; `None` when levels are nested (then the
    /// cluster's rows hold all of the level's rows).
    fn level_sums(&self, _g: u32) -> Option<(f64, ArrayView1<'_, f64>)> {
        None
    }
    /// Weighted CR2 only: S = Σ_k w_k x̃_k x̃_k'.
    fn s_mat(&self) -> Array2<f64>;
    /// An exact shortcut for cluster `s` under equal weights (one [`EqualOut`] per estimand), or
    /// `None` to take the roots from [`Cr2Design::rows`].
    fn equal_fast(&self, _s: usize) -> Option<Vec<EqualOut>> {
        None
    }
}

/// Use the low-rank root of a cluster's CR2 adjustment when the cluster has more than this many
/// times as many rows as the update has columns; below it the dense n x n root is as cheap.
const LOW_RANK_FACTOR: usize = 2;

/// Clusters per chunk: the unit of parallel work whose results are summed in cluster order.
const CLUSTER_CHUNK: usize = 1024;

/// Which root of each cluster's CR2 adjustment to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// The low-rank root for large clusters, the dense one for small ones.
    Auto,
    /// The dense root everywhere (the tests' oracle).
    #[cfg(test)]
    Dense,
    /// The low-rank root everywhere (to test it on small clusters).
    #[cfg(test)]
    LowRank,
}

impl Roots {
    /// Whether a cluster of `rows` rows takes the low-rank root of an update with `cols` columns.
    fn low_rank(self, rows: usize, cols: usize) -> bool {
        match self {
            Roots::Auto => rows > LOW_RANK_FACTOR * cols,
            #[cfg(test)]
            Roots::Dense => false,
            #[cfg(test)]
            Roots::LowRank => true,
        }
    }
}

/// Runs `map` on every cluster, a chunk at a time on every core, and hands each chunk's results
/// to `fold` in cluster order; checks `progress` before every cluster.
fn by_chunks<T: Send>(
    n: usize,
    progress: Option<&Progress>,
    map: impl Fn(usize) -> T + Sync,
    mut fold: impl FnMut(Vec<T>),
) -> Result<(), EstimateError> {
    let check = || -> Result<(), EstimateError> {
        match progress {
            Some(p) => Ok(p.check()?),
            None => Ok(()),
        }
    };
    let mut start = 0;
    while start < n {
        let end = (start + CLUSTER_CHUNK).min(n);
        check()?;
        let outs: Vec<T> = (start..end)
            .into_par_iter()
            .map(|s| {
                check()?;
                Ok(map(s))
            })
            .collect::<Result<Vec<T>, EstimateError>>()?;
        fold(outs);
        start = end;
    }
    Ok(())
}

/// The levels among a cluster's rows, in order of first appearance.
fn levels_of(level: &[u32]) -> Vec<u32> {
    let mut levels: Vec<u32> = Vec::new();
    for &g in level {
        if !levels.contains(&g) {
            levels.push(g);
        }
    }
    levels
}

/// Y1 = [√w_i on the rows of each level, X̃_s] (rows x (levels + p)) and C1 = diag(1/W_g, M), so
/// that the cluster's block of the projection is Y1 C1 Y1'.
fn cluster_basis<D: Cr2Design + ?Sized>(
    design: &D,
    rows: &ClusterRows,
    levels: &[u32],
) -> (Array2<f64>, Array2<f64>) {
    let m = design.m();
    let p = m.nrows();
    let nl = levels.len();
    let ns = rows.sqw.len();
    let mut y = Array2::<f64>::zeros((ns, nl + p));
    for a in 0..ns {
        let x = levels.iter().position(|&g| g == rows.level[a]).unwrap_or(0);
        y[[a, x]] = rows.sqw[a];
        for col in 0..p {
            y[[a, nl + col]] = rows.xt[[a, col]];
        }
    }
    let mut c = Array2::<f64>::zeros((nl + p, nl + p));
    for (x, &g) in levels.iter().enumerate() {
        c[[x, x]] = 1.0 / design.level_w(g);
    }
    for r in 0..p {
        for col in 0..p {
            c[[nl + r, nl + col]] = m[[r, col]];
        }
    }
    (y, c)
}

/// Applies a root, given as a closure on one vector, to every column of the influence.
fn apply_columns(infl: &Array2<f64>, root: impl Fn(&Array1<f64>) -> Array1<f64>) -> Array2<f64> {
    let mut out = Array2::<f64>::zeros(infl.dim());
    for (k, col) in infl.axis_iter(Axis(1)).enumerate() {
        out.column_mut(k).assign(&root(&col.to_owned()));
    }
    out
}

/// One cluster's equal-weights pieces, from its rows: A_s = [(I − H)_ss]^{+1/2} with
/// B_s = I − (P_D)_ss − X̃_s M X̃_s' = I + Y C Y' (Y the cluster's level indicators times √w and
/// X̃_s, C = −diag(1/W_g, M)).
pub fn equal_out<D: Cr2Design + ?Sized>(
    design: &D,
    rows: &ClusterRows,
    roots: Roots,
) -> Vec<EqualOut> {
    let m = design.m();
    let p = m.nrows();
    let ns = rows.sqw.len();
    let levels = levels_of(&rows.level);
    let q = if roots.low_rank(ns, levels.len() + p) {
        let (y, mut c) = cluster_basis(design, rows, &levels);
        c.mapv_inplace(|v| -v);
        let root = LowRankRoot::new(&y, &c);
        apply_columns(&rows.infl, |v| root.apply(v))
    } else {
        let mx = rows.xt.dot(m);
        let mut b = Array2::<f64>::zeros((ns, ns));
        for a in 0..ns {
            for c in a..ns {
                let mut v = if a == c { 1.0 } else { 0.0 };
                if rows.level[a] == rows.level[c] {
                    v -= rows.sqw[a] * rows.sqw[c] / design.level_w(rows.level[a]);
                }
                v -= rows.xt.row(c).dot(&mx.row(a));
                b[[a, c]] = v;
                b[[c, a]] = v;
            }
        }
        sqrt_pinv(&b).dot(&rows.infl)
    };
    let res = ArrayView1::from(&rows.et);
    q.axis_iter(Axis(1))
        .map(|q| {
            let mut v: Vec<(u32, f64)> = Vec::new();
            for a in 0..ns {
                let g = rows.level[a];
                let val = rows.sqw[a] * q[a];
                match v.iter_mut().find(|(h, _)| *h == g) {
                    Some((_, acc)) => *acc += val,
                    None => v.push((g, val)),
                }
            }
            let u = rows.xt.t().dot(&q);
            let umu = u.dot(&m.dot(&u));
            EqualOut {
                score: q.dot(&res),
                d: q.dot(&q),
                v,
                u,
                umu,
            }
        })
        .collect()
}

/// The sums over clusters of one estimand's equal-weights CR2: the variance, and the pieces of
/// the Satterthwaite df with Ω = diag(q_s'q_s) − L, L = V W⁻¹ V' + U M U' (V the per-level sums,
/// U the stacked u_s), whose ||L||_F² needs V'V (sparse by level pair), V'U (by level) and U'U.
struct EqualSums {
    var: KahanSum,
    d_sum: KahanSum,
    l_sum: KahanSum,
    dd: KahanSum,
    dl: KahanSum,
    /// Parts of ||L||_F² summed cluster by cluster (nested levels).
    ll: KahanSum,
    vv: HashMap<(u32, u32), f64>,
    vu: HashMap<u32, Array1<f64>>,
    uu: Array2<f64>,
}

impl EqualSums {
    fn new(p: usize) -> Self {
        EqualSums {
            var: KahanSum::default(),
            d_sum: KahanSum::default(),
            l_sum: KahanSum::default(),
            dd: KahanSum::default(),
            dl: KahanSum::default(),
            ll: KahanSum::default(),
            vv: HashMap::new(),
            vu: HashMap::new(),
            uu: Array2::zeros((p, p)),
        }
    }

    fn push<D: Cr2Design + ?Sized>(&mut self, design: &D, o: &EqualOut) {
        self.var.add(o.score * o.score);
        let mut kappa = 0.0;
        for &(g, v) in &o.v {
            kappa += v * v / design.level_w(g);
        }
        let l_ss = o.umu + kappa;
        if design.nested() {
            // Each level in one cluster: its V'V and V'U terms are this cluster's alone.
            self.ll.add(kappa * kappa + 2.0 * kappa * o.umu);
        } else {
            for &(g, vg) in &o.v {
                for &(h, vh) in &o.v {
                    *self.vv.entry((g, h)).or_insert(0.0) += vg * vh;
                }
                let e = self.vu.entry(g).or_insert_with(|| Array1::zeros(o.u.len()));
                e.scaled_add(vg, &o.u);
            }
        }
        self.d_sum.add(o.d);
        self.l_sum.add(l_ss);
        self.dd.add(o.d * o.d);
        self.dl.add(o.d * l_ss);
    }

    fn finish<D: Cr2Design + ?Sized>(mut self, design: &D) -> Cr2 {
        let m = design.m();
        let p = m.nrows();
        let mut vv: Vec<_> = self.vv.into_iter().collect();
        vv.sort_unstable_by_key(|(k, _)| *k);
        for ((g, h), v) in vv {
            self.ll.add(v * v / (design.level_w(g) * design.level_w(h)));
        }
        let mut vu: Vec<_> = self.vu.into_iter().collect();
        vu.sort_unstable_by_key(|(k, _)| *k);
        for (g, r) in vu {
            self.ll.add(2.0 * r.dot(&m.dot(&r)) / design.level_w(g));
        }
        let mu = m.dot(&self.uu);
        let mut tr = KahanSum::default();
        for r in 0..p {
            for c in 0..p {
                tr.add(mu[[r, c]] * mu[[c, r]]);
            }
        }
        self.ll.add(tr.value());
        let num = self.d_sum.value() - self.l_sum.value();
        let den = self.dd.value() - 2.0 * self.dl.value() + self.ll.value();
        Cr2 {
            variance: self.var.value(),
            df: num * num / den,
        }
    }
}

/// Stacks vectors of length `cols` as the rows of a matrix.
fn stack<'a>(rows: impl ExactSizeIterator<Item = ArrayView1<'a, f64>>, cols: usize) -> Array2<f64> {
    let n = rows.len();
    let mut out = Array2::<f64>::zeros((n, cols));
    for (i, r) in rows.enumerate() {
        out.row_mut(i).assign(&r);
    }
    out
}

/// Equal-weights CR2 of every estimand of `design`.
///
/// # Errors
/// [`EstimateError::Cancelled`] once `progress` is cancelled.
pub fn cr2_equal<D: Cr2Design>(
    design: &D,
    roots: Roots,
    progress: Option<&Progress>,
) -> Result<Vec<Cr2>, EstimateError> {
    let p = design.m().nrows();
    let k = design.n_estimands();
    let mut sums: Vec<EqualSums> = (0..k).map(|_| EqualSums::new(p)).collect();
    by_chunks(
        design.n_clusters(),
        progress,
        |s| match design.equal_fast(s) {
            Some(out) => out,
            None => equal_out(design, &design.rows(s), roots),
        },
        |outs| {
            for (e, sum) in sums.iter_mut().enumerate() {
                for o in &outs {
                    sum.push(design, &o[e]);
                }
                // U'U of the chunk in one matrix product.
                let u = stack(outs.iter().map(|o| o[e].u.view()), p);
                general_mat_mul(1.0, &u.t(), &u, 1.0, &mut sum.uu);
            }
        },
    )?;
    Ok(sums.into_iter().map(|s| s.finish(design)).collect())
}

/// One cluster's pieces of Ω for the weighted Satterthwaite df: Ω_st = δ_st Δ_s + L_st with
/// L_st = f_s' K f_t + Σ_g h_s(g)' Q_g h_t(g), where f_s = (xa, xb, ρ) and h_s(g) = (va, vb) for
/// each level g of the absorbed factor in the cluster; with the score, f_s'Kf_s and
/// η_s = Σ_g h_s(g)'Q_g h_s(g).
#[derive(Debug, Clone)]
pub struct WeightedOut {
    /// u'e (original scale).
    pub score: f64,
    /// Δ_s.
    pub delta: f64,
    /// (level, va, vb) per level in the cluster.
    pub groups: Vec<(u32, f64, f64)>,
    /// f_s = (xa, xb, ρ), 3p values.
    pub f: Vec<f64>,
    /// f_s'Kf_s.
    pub fkf: f64,
    /// η_s.
    pub eta: f64,
}

/// What the weighted CR2 reads besides the clusters' rows: M, MSM and `K v` for
/// `K = [[MSM, −M, M], [−M, 0, 0], [M, 0, 0]]`.
struct WeightedCtx<'a> {
    m: &'a Array2<f64>,
    msm: Array2<f64>,
}

impl WeightedCtx<'_> {
    /// K v for v = (a, b, r): (MSM a + M (r − b), −M a, M a).
    fn kdot(&self, v: &[f64]) -> Vec<f64> {
        let p = self.m.nrows();
        let a = ArrayView1::from(&v[..p]);
        let b = ArrayView1::from(&v[p..2 * p]);
        let r = ArrayView1::from(&v[2 * p..]);
        let ma = self.m.dot(&a);
        let top = self.msm.dot(&a) + self.m.dot(&(&r - &b));
        let mut out = Vec::with_capacity(3 * p);
        out.extend(top.iter());
        out.extend(ma.iter().map(|x| -x));
        out.extend(ma.iter());
        out
    }
}

/// `Q_g = [[q_g, −1/W_g], [−1/W_g, 0]]`.
fn qg(q: f64, w: f64) -> [[f64; 2]; 2] {
    let inv_w = 1.0 / w;
    [[q, -inv_w], [-inv_w, 0.0]]
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One cluster's weighted pieces, from its rows, as clubSandwich computes CR2 for a weighted `lm`
/// (`inverse_var = FALSE`, identity working model): with H = X(X'WX)⁻¹X'W,
/// G_s = [(I − H)(I − H)']_ss and A_s = G_s^{+1/2}; in the √w space (P̃ the symmetric projection)
/// (I − H)(I − H)' = W^{-1/2} K W^{-1/2} with K = (I − P̃) W (I − P̃), whose block follows from the
/// per-level sums q_g, r_g and S.
fn weighted_out<D: Cr2Design + ?Sized>(
    design: &D,
    ctx: &WeightedCtx<'_>,
    rows: &ClusterRows,
    roots: Roots,
) -> Vec<WeightedOut> {
    let m = ctx.m;
    let msm = &ctx.msm;
    let p = m.nrows();
    let ns = rows.sqw.len();
    let w: Vec<f64> = rows.sqw.iter().map(|s| s * s).collect();
    let levels = levels_of(&rows.level);
    let nl = levels.len();
    // Per level in the cluster: q_g, r_g and M r_g / W_g.
    let mut lq = vec![0.0; nl];
    let mut lr = Array2::<f64>::zeros((nl, p));
    for (x, &g) in levels.iter().enumerate() {
        match design.level_sums(g) {
            Some((q, r)) => {
                lq[x] = q;
                lr.row_mut(x).assign(&r);
            }
            None => {
                let wg = design.level_w(g);
                for a in 0..ns {
                    if rows.level[a] == g {
                        lq[x] += w[a] * w[a];
                        lr.row_mut(x)
                            .scaled_add(w[a] * rows.sqw[a], &rows.xt.row(a));
                    }
                }
                lq[x] /= wg * wg;
            }
        }
    }
    let mr: Vec<Array1<f64>> = (0..nl)
        .map(|x| m.dot(&lr.row(x)) / design.level_w(levels[x]))
        .collect();
    let at = |g: u32| levels.iter().position(|&h| h == g).unwrap_or(0);
    // Each row's level, as an index into `levels`.
    let lv: Vec<usize> = rows.level.iter().map(|&g| at(g)).collect();
    let a_orig: Array2<f64> =
        Array2::from_shape_fn(rows.infl.dim(), |(a, k)| rows.infl[[a, k]] * rows.sqw[a]);
    let u = if design.nested() && roots.low_rank(ns, nl + 2 * p) {
        nested_weighted_root(
            ctx,
            rows,
            (&levels, &lv),
            &lr,
            |g| design.level_w(g),
            &a_orig,
        )
    } else if roots.low_rank(ns, 2 * (nl + p)) {
        // G_s = I − Ya C1 Yb' − Yb C1 Ya' + Ya Φ Ya' with Y1 = [level indicators × √w, X̃_s],
        // Ya = W_s^{-1/2} Y1, Yb = W_s^{1/2} Y1, C1 = diag(1/W_g, M) and Φ the blocks q_g,
        // M r_g / W_g and MSM: G_s = I + [Ya Yb] [[Φ, −C1], [−C1, 0]] [Ya Yb]'.
        let (y1, c1) = cluster_basis(design, rows, &levels);
        let k1 = y1.ncols();
        let mut y = Array2::<f64>::zeros((ns, 2 * k1));
        for a in 0..ns {
            for col in 0..k1 {
                y[[a, col]] = y1[[a, col]] / rows.sqw[a];
                y[[a, k1 + col]] = y1[[a, col]] * rows.sqw[a];
            }
        }
        let mut c = Array2::<f64>::zeros((2 * k1, 2 * k1));
        for x in 0..nl {
            c[[x, x]] = lq[x];
            for col in 0..p {
                c[[x, nl + col]] = mr[x][col];
                c[[nl + col, x]] = mr[x][col];
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
        let root = LowRankRoot::new(&y, &c);
        apply_columns(&a_orig, |v| root.apply(v))
    } else {
        // X̃MX̃', X̃ MSM X̃' and X̃ (M r_g / W_g) as matrix products.
        let xmx = rows.xt.dot(&m.dot(&rows.xt.t()));
        let xsx = rows.xt.dot(&msm.dot(&rows.xt.t()));
        let mut mrm = Array2::<f64>::zeros((p, nl));
        for (x, v) in mr.iter().enumerate() {
            mrm.column_mut(x).assign(v);
        }
        let xr = rows.xt.dot(&mrm);
        let mut k_ss = Array2::<f64>::zeros((ns, ns));
        for a in 0..ns {
            for b in 0..ns {
                let (xi, xj) = (lv[a], lv[b]);
                let mut pij = xmx[[a, b]];
                if xi == xj {
                    pij += rows.sqw[a] * rows.sqw[b] / design.level_w(rows.level[a]);
                }
                let mut pwp = xsx[[a, b]];
                pwp += rows.sqw[a] * xr[[b, xi]];
                pwp += rows.sqw[b] * xr[[a, xj]];
                if xi == xj {
                    pwp += rows.sqw[a] * rows.sqw[b] * lq[xi];
                }
                let mut v = -pij * w[b] - w[a] * pij + pwp;
                if a == b {
                    v += w[a];
                }
                // G_s = W^{-1/2} K W^{-1/2}
                k_ss[[a, b]] = v / (rows.sqw[a] * rows.sqw[b]);
            }
        }
        sqrt_pinv(&k_ss).dot(&a_orig)
    };
    // α = W^{-1/2} u, β = W α, and X̃'α, X̃'β of every estimand as matrix products.
    let alpha = Array2::from_shape_fn(u.dim(), |(a, e)| u[[a, e]] / rows.sqw[a]);
    let beta = Array2::from_shape_fn(u.dim(), |(a, e)| w[a] * alpha[[a, e]]);
    let xas = rows.xt.t().dot(&alpha);
    let xbs = rows.xt.t().dot(&beta);
    (0..u.ncols())
        .map(|e| {
            let mut score = 0.0;
            for a in 0..ns {
                score += u[[a, e]] * rows.et[a] / rows.sqw[a];
            }
            let mut sums = vec![(0.0, 0.0); nl];
            let mut delta = 0.0;
            for a in 0..ns {
                let (al, be) = (alpha[[a, e]], beta[[a, e]]);
                delta += w[a] * al * al;
                let s = &mut sums[lv[a]];
                s.0 += rows.sqw[a] * al;
                s.1 += rows.sqw[a] * be;
            }
            let groups: Vec<(u32, f64, f64)> = levels
                .iter()
                .zip(&sums)
                .map(|(&g, &(va, vb))| (g, va, vb))
                .collect();
            let (xa, xb) = (xas.column(e), xbs.column(e));
            let mut rho = Array1::<f64>::zeros(p);
            for &(g, va, _) in &groups {
                rho.scaled_add(va / design.level_w(g), &lr.row(at(g)));
            }
            let mut f = Vec::with_capacity(3 * p);
            f.extend(xa.iter());
            f.extend(xb.iter());
            f.extend(rho.iter());
            let fkf = dot(&f, &ctx.kdot(&f));
            let mut eta = 0.0;
            for &(g, va, vb) in &groups {
                let q = qg(lq[at(g)], design.level_w(g));
                eta += q[0][0] * va * va + 2.0 * q[0][1] * va * vb + q[1][1] * vb * vb;
            }
            WeightedOut {
                score,
                delta,
                groups,
                f,
                fkf,
                eta,
            }
        })
        .collect()
}

/// G_s^{+1/2} A for the columns of `a` when the levels are nested in the cluster, in about
/// n_s·(2p)² + (L + 2p)³ for L levels, where the general low-rank root of [`weighted_out`] costs
/// n_s·(2L + 2p)²: the cluster's firms under dagsverk weights made that path the whole cost of a
/// national trial's run (issue 12).
///
/// With E = I − P_D (block diagonal, E_g = I − 1w_g'/W_g per level), Ẽ = E X̃ = X̃ and
/// Z = E W X̃ (original scale), G_s = E E' + [X̃ Z] C [X̃ Z]' with C = [[MSM, −M], [−M, 0]].
/// G_s w_g = 0 for every level, and on V = {v : w_g'v = 0 for all g} the level part is
/// E E' = I + Σ_g q_g c_g c_g' with c_g = P_V 1_g: identity plus one direction per level, the
/// directions on disjoint rows. So with B = [ĉ_g, an orthonormal basis of the rest of [X̃ Z]]
/// (orthonormal, within V), G_s = (P_V − BB') + B T B' with T = I + diag(q_g|c_g|², 0) +
/// [P; R] C [P; R]', and G_s^{+1/2} = (P_V − BB') + B T^{+1/2} B': the same eigenvalues, and so
/// the same pseudo-inverse, as the dense root.
fn nested_weighted_root(
    ctx: &WeightedCtx<'_>,
    rows: &ClusterRows,
    (levels, lv): (&[u32], &[usize]),
    lr: &Array2<f64>,
    level_w: impl Fn(u32) -> f64,
    a: &Array2<f64>,
) -> Array2<f64> {
    let p = ctx.m.nrows();
    let ns = rows.sqw.len();
    let nl = levels.len();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); nl];
    for (i, &x) in lv.iter().enumerate() {
        members[x].push(i);
    }
    let w: Vec<f64> = rows.sqw.iter().map(|s| s * s).collect();
    // u_g = w_g/|w_g| on the level's rows, and the level directions ĉ_g with their μ_g.
    let mut unit = vec![0.0; ns];
    let mut chat = vec![0.0; ns];
    let mut mu: Vec<(usize, f64)> = Vec::new();
    for (x, idx) in members.iter().enumerate() {
        let norm = idx.iter().map(|&i| w[i] * w[i]).sum::<f64>().sqrt();
        let u1: f64 = idx.iter().map(|&i| w[i] / norm).sum();
        for &i in idx {
            unit[i] = w[i] / norm;
            chat[i] = 1.0 - unit[i] * u1;
        }
        let cc: f64 = idx.iter().map(|&i| chat[i] * chat[i]).sum();
        let wg = level_w(levels[x]);
        let q: f64 = idx.iter().map(|&i| w[i] * w[i]).sum::<f64>() / (wg * wg);
        // A level whose weights are equal has c_g = 0 (rounding aside): no direction.
        if cc > 1e-24 * idx.len() as f64 {
            let cn = cc.sqrt();
            for &i in idx {
                chat[i] /= cn;
            }
            mu.push((x, q * cc));
        } else {
            for &i in idx {
                chat[i] = 0.0;
            }
        }
    }
    let nc = mu.len();
    // Takes the components along every u_g and ĉ_g out of a column; returns its ĉ_g parts (one
    // per level with a direction).
    let off_col = |mut v: ndarray::ArrayViewMut1<'_, f64>, coef: &mut Vec<f64>| {
        coef.clear();
        for &(x, _) in &mu {
            coef.push(members[x].iter().map(|&i| v[i] * chat[i]).sum());
        }
        for idx in &members {
            // (ĉ_g is zero on a level without a direction)
            let (mut t, mut c) = (0.0, 0.0);
            for &i in idx {
                t += v[i] * unit[i];
                c += v[i] * chat[i];
            }
            for &i in idx {
                v[i] -= t * unit[i] + c * chat[i];
            }
        }
    };
    let off_levels = |v: &mut Array2<f64>, mut out: Option<&mut Array2<f64>>| {
        let mut coef = Vec::with_capacity(nc);
        for (col, column) in v.columns_mut().into_iter().enumerate() {
            off_col(column, &mut coef);
            if let Some(out) = out.as_deref_mut() {
                for (k, &c) in coef.iter().enumerate() {
                    out[[k, col]] = c;
                }
            }
        }
    };
    // Y = [X̃ Z] in the original scale; P = Ĉ'Y, and Y⊥ = Y within V without the ĉ_g.
    let mut y = Array2::<f64>::zeros((ns, 2 * p));
    for (x, idx) in members.iter().enumerate() {
        let wg = level_w(levels[x]);
        for &i in idx {
            for col in 0..p {
                let xo = rows.xt[[i, col]] / rows.sqw[i];
                y[[i, col]] = xo;
                y[[i, p + col]] = w[i] * xo - lr[[x, col]] / wg;
            }
        }
    }
    let mut um = Array2::<f64>::zeros((nc, 2 * p));
    off_levels(&mut y, Some(&mut um));
    // An orthonormal basis Q of Y⊥ (classical Gram-Schmidt twice, as rows of `q`). A direction
    // kept from rounding alone is harmless only within V, so every pass projects on V again (a
    // small cluster's V can be spanned by Y).
    let mut q = Array2::<f64>::zeros((2 * p, ns));
    let mut r = 0;
    let mut coef = Vec::with_capacity(nc);
    for col in 0..2 * p {
        let mut v = y.column(col).to_owned();
        let norm0 = v.dot(&v).sqrt();
        if norm0 == 0.0 {
            continue;
        }
        for _ in 0..2 {
            let qr = q.slice_axis(Axis(0), (0..r).into());
            let h = qr.dot(&v);
            ndarray::linalg::general_mat_vec_mul(-1.0, &qr.t(), &h, 1.0, &mut v);
            off_col(v.view_mut(), &mut coef);
        }
        let norm = v.dot(&v).sqrt();
        if norm <= 1e-14 * norm0 {
            continue;
        }
        q.row_mut(r).assign(&(v / norm));
        r += 1;
    }
    let q = q.slice_axis(Axis(0), (0..r).into()).to_owned();
    // U = [P; R] with R = Q Y⊥ ((nc + r) x 2p), T = I + diag(μ, 0) + U C U'.
    let n = nc + r;
    let rq = q.dot(&y);
    let mut u = Array2::<f64>::zeros((n, 2 * p));
    for k in 0..nc {
        u.row_mut(k).assign(&um.row(k));
    }
    for k in 0..r {
        u.row_mut(nc + k).assign(&rq.row(k));
    }
    // (Y⊥ is Y less its ĉ parts: P and R together are B'Y.)
    let mut c = Array2::<f64>::zeros((2 * p, 2 * p));
    for i in 0..p {
        for j in 0..p {
            c[[i, j]] = ctx.msm[[i, j]];
            c[[i, p + j]] = -ctx.m[[i, j]];
            c[[p + i, j]] = -ctx.m[[i, j]];
        }
    }
    let mut t = u.dot(&c).dot(&u.t());
    for (k, &(_, m)) in mu.iter().enumerate() {
        t[[k, k]] += m;
    }
    for i in 0..n {
        t[[i, i]] += 1.0;
    }
    let t = Array2::from_shape_fn((n, n), |(i, j)| 0.5 * (t[[i, j]] + t[[j, i]]));
    // A_V, z = B'A_V, and A_V + B (T^{+1/2} − I) z.
    let mut out = a.clone();
    let k = a.ncols();
    let mut z = Array2::<f64>::zeros((n, k));
    let mut zc = Array2::<f64>::zeros((nc, k));
    off_levels(&mut out, Some(&mut zc));
    // off_levels took the ĉ parts out as well; put them back (A_V keeps them).
    for (j, &(x, _)) in mu.iter().enumerate() {
        for &i in &members[x] {
            for col in 0..k {
                out[[i, col]] += zc[[j, col]] * chat[i];
            }
        }
    }
    let zq = q.dot(&out);
    for j in 0..nc {
        z.row_mut(j).assign(&zc.row(j));
    }
    for j in 0..r {
        z.row_mut(nc + j).assign(&zq.row(j));
    }
    let mut d = sqrt_pinv_apply(&t, &z);
    d -= &z;
    for (j, &(x, _)) in mu.iter().enumerate() {
        for &i in &members[x] {
            for col in 0..k {
                out[[i, col]] += d[[j, col]] * chat[i];
            }
        }
    }
    let dq = d.slice_axis(Axis(0), (nc..n).into());
    general_mat_mul(1.0, &q.t(), &dq, 1.0, &mut out);
    out
}

/// The sums over clusters of one estimand's weighted CR2: the variance, tr(Ω) and ||Ω||_F²
/// without forming Ω: with Z the clusters' stacked (f_s, h_s) and B = diag(K, Q), L = Z B Z', so
/// Σ_st L_st² = tr((B Z'Z)²), and Z'Z has a 3p x 3p dense block (P_FF), a 3p x 2 block per level
/// (X_g) and 2 x 2 blocks for levels that share a cluster (P_gh). When levels are nested in
/// clusters, the last two are one cluster's each and their terms are summed cluster by cluster:
/// 2 η_s f_s'Kf_s + η_s². The cost is about G·p², not G² (issue 12).
struct WeightedSums {
    var: KahanSum,
    trace: KahanSum,
    sq: KahanSum,
    ll: KahanSum,
    pff: Array2<f64>,
    xg: HashMap<u32, [Vec<f64>; 2]>,
    pgh: HashMap<(u32, u32), [[f64; 2]; 2]>,
    /// q_g of the levels seen (non-nested designs).
    lq: HashMap<u32, f64>,
}

impl WeightedSums {
    fn new(p: usize) -> Self {
        WeightedSums {
            var: KahanSum::default(),
            trace: KahanSum::default(),
            sq: KahanSum::default(),
            ll: KahanSum::default(),
            pff: Array2::zeros((3 * p, 3 * p)),
            xg: HashMap::new(),
            pgh: HashMap::new(),
            lq: HashMap::new(),
        }
    }

    fn push(&mut self, nested: bool, o: &WeightedOut, level_q: impl Fn(u32) -> f64) {
        self.var.add(o.score * o.score);
        let l_ss = o.fkf + o.eta;
        self.trace.add(o.delta + l_ss);
        self.sq.add(o.delta * o.delta + 2.0 * o.delta * l_ss);
        if nested {
            self.ll.add(2.0 * o.eta * o.fkf + o.eta * o.eta);
            return;
        }
        for &(g, va, vb) in &o.groups {
            self.lq.entry(g).or_insert_with(|| level_q(g));
            let cols = self
                .xg
                .entry(g)
                .or_insert_with(|| [vec![0.0; o.f.len()], vec![0.0; o.f.len()]]);
            for (k, &fk) in o.f.iter().enumerate() {
                cols[0][k] += va * fk;
                cols[1][k] += vb * fk;
            }
            for &(h, wa, wb) in &o.groups {
                let e = self.pgh.entry((g, h)).or_insert([[0.0; 2]; 2]);
                e[0][0] += va * wa;
                e[0][1] += va * wb;
                e[1][0] += vb * wa;
                e[1][1] += vb * wb;
            }
        }
    }

    fn finish<D: Cr2Design + ?Sized>(mut self, design: &D, ctx: &WeightedCtx<'_>) -> Cr2 {
        let p3 = self.pff.nrows();
        // tr((K P_FF)²).
        let mut kp = Array2::<f64>::zeros((p3, p3));
        for c in 0..p3 {
            let col: Vec<f64> = self.pff.column(c).to_vec();
            for (r, v) in ctx.kdot(&col).into_iter().enumerate() {
                kp[[r, c]] = v;
            }
        }
        let mut tr = KahanSum::default();
        for r in 0..p3 {
            for c in 0..p3 {
                tr.add(kp[[r, c]] * kp[[c, r]]);
            }
        }
        self.ll.add(tr.value());
        // 2 Σ_g tr(K X_g Q_g X_g'), in a fixed order of levels.
        let mut levels: Vec<_> = self.xg.into_iter().collect();
        levels.sort_unstable_by_key(|(g, _)| *g);
        for (g, cols) in &levels {
            let qm = qg(self.lq[g], design.level_w(*g));
            let k0 = ctx.kdot(&cols[0]);
            let k1 = ctx.kdot(&cols[1]);
            let t = qm[0][0] * dot(&cols[0], &k0)
                + qm[0][1] * (dot(&cols[0], &k1) + dot(&cols[1], &k0))
                + qm[1][1] * dot(&cols[1], &k1);
            self.ll.add(2.0 * t);
        }
        // Σ_{g,h} tr(Q_g P_gh Q_h P_gh').
        let mut pairs: Vec<_> = self.pgh.into_iter().collect();
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
            let pt = [[pm[0][0], pm[1][0]], [pm[0][1], pm[1][1]]];
            let qgm = qg(self.lq[g], design.level_w(*g));
            let qhm = qg(self.lq[h], design.level_w(*h));
            let prod = mul(&mul(&mul(&qgm, pm), &qhm), &pt);
            self.ll.add(prod[0][0] + prod[1][1]);
        }
        self.sq.add(self.ll.value());
        let tr = self.trace.value();
        Cr2 {
            variance: self.var.value(),
            df: tr * tr / self.sq.value(),
        }
    }
}

/// The q_g of a level, from the design or (nested levels) from a cluster's rows.
fn level_q_of<D: Cr2Design + ?Sized>(design: &D, g: u32) -> f64 {
    design.level_sums(g).map_or(0.0, |(q, _)| q)
}

/// Weighted CR2 of every estimand of `design` (see [`weighted_out`]); the Satterthwaite df from
/// tr(Ω) and ||Ω||_F², summed over clusters in about G·p² ([`WeightedSums`]).
///
/// # Errors
/// [`EstimateError::Cancelled`] once `progress` is cancelled.
pub fn cr2_weighted<D: Cr2Design>(
    design: &D,
    roots: Roots,
    progress: Option<&Progress>,
) -> Result<Vec<Cr2>, EstimateError> {
    let m = design.m();
    let p = m.nrows();
    let ctx = WeightedCtx {
        m,
        msm: m.dot(&design.s_mat()).dot(m),
    };
    let k = design.n_estimands();
    let nested = design.nested();
    let mut sums: Vec<WeightedSums> = (0..k).map(|_| WeightedSums::new(p)).collect();
    by_chunks(
        design.n_clusters(),
        progress,
        |s| weighted_out(design, &ctx, &design.rows(s), roots),
        |outs| {
            for (e, sum) in sums.iter_mut().enumerate() {
                for o in &outs {
                    sum.push(nested, &o[e], |g| level_q_of(design, g));
                }
                let f = stack(outs.iter().map(|o| ArrayView1::from(&o[e].f)), 3 * p);
                general_mat_mul(1.0, &f.t(), &f, 1.0, &mut sum.pff);
            }
        },
    )?;
    Ok(sums.into_iter().map(|s| s.finish(design, &ctx)).collect())
}

/// Every cluster's weighted pieces (all at once: for the tests' pairwise oracle).
#[cfg(test)]
pub(crate) fn weighted_parts<D: Cr2Design>(design: &D) -> (Vec<Vec<WeightedOut>>, Array2<f64>) {
    let m = design.m();
    let ctx = WeightedCtx {
        m,
        msm: m.dot(&design.s_mat()).dot(m),
    };
    let parts = (0..design.n_clusters())
        .map(|s| weighted_out(design, &ctx, &design.rows(s), Roots::Auto))
        .collect();
    (parts, ctx.msm)
}
