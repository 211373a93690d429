//! Two-way fixed effects on the firm-quarter panel: `did_twfe` and `event_study`.
//!
//! Firm effects are absorbed exactly by (weighted) within-firm demeaning; quarter effects enter as
//! explicit dummies (one per quarter but the first), which after demeaning is the exact two-way
//! projection on an unbalanced panel, with no iteration. Every row has at most two non-zero
//! regressors (one treatment column and one quarter), so the normal equations are accumulated firm
//! by firm from sparse rows and the n x p design is never built: memory is the panel's own columns
//! plus O(firms) (docs/statistics.md A.5). The within-firm part of the Gram matrix, Σ_i s_i s_i'/W_i,
//! is one matrix product per block of firms. CR1 keeps, per cluster, only R S_g (R the treatment
//! rows of the inverse Gram, S_g the cluster's score), n_treat numbers. CR2 ([`cr2`]) runs on
//! [`super::cr2`] cluster by cluster: each cluster's projected rows are built from its sparse rows
//! and its firms' means when the cluster is reached, with the CR1 fit's inverse Gram, so memory
//! stays the panel's plus one chunk of clusters, whatever the number of clusters; under equal
//! weights a cluster's adjustment is usually an exact power series in p x p products
//! ([`PanelCr2::equal_fast`]). The dense projected design survives only as the tests' oracle.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView1, Axis, Slice};

use super::EstimateError;
use super::cr2::{self, ClusterRows, Cr2Design, EqualOut, Roots};
use super::linalg::{GramInverse, KahanSum, invert_gram};
use super::ols;
use crate::progress::Progress;

/// A firm-quarter panel for one contrast, rows sorted by firm.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Firm index per row (`0..n_firms`), non-decreasing.
    pub firm: Vec<u32>,
    /// Quarter index per row (`0..n_quarters`).
    pub quarter: Vec<u16>,
    /// Outcome per row.
    pub y: Vec<f64>,
    /// Weight per row; empty for equal weights (every row 1), so that the firm weighting carries
    /// no column of ones.
    pub w: Vec<f64>,
    /// Treatment column per row (`u16::MAX` for none); value 1.
    pub treat_col: Vec<u16>,
    /// Number of treatment columns (1 for DiD, one per relative quarter for the event study).
    pub n_treat: usize,
    /// Number of quarters.
    pub n_quarters: usize,
    /// Cluster per firm (`0..n_clusters`).
    pub firm_cluster: Vec<u32>,
    /// Number of clusters.
    pub n_clusters: usize,
}

/// Fitted TWFE coefficients with CR1 inference.
#[derive(Debug, Clone)]
pub struct TwfeFit {
    /// All coefficients: treatment columns first, then quarters 1.. (0 where dropped).
    pub beta: Array1<f64>,
    /// Inverse of the projected Gram matrix and the columns kept.
    pub ginv: GramInverse,
    /// CR1 covariance of the treatment coefficients (n_treat x n_treat).
    pub vcov_cr1: Array2<f64>,
    /// The small-sample factor applied: G/(G-1) (N-1)/(N-K).
    pub ssc_factor: f64,
    /// Rows.
    pub n_obs: usize,
    /// K: coefficients and the quarter effect's levels (firm effects are nested in the clusters).
    pub k: usize,
    /// Clusters with at least one row.
    pub n_clusters: usize,
    /// Firms with at least one row.
    pub n_firms: usize,
}

/// Drops firms with a single row and quarters with a single row until none remain (singletons are
/// fitted perfectly by their own fixed effect and carry no information). Returns the number of
/// firms dropped.
pub fn drop_singletons(panel: &mut Panel) -> usize {
    let mut dropped_firms = 0;
    loop {
        let n_firms = panel.firm_cluster.len();
        let mut per_firm = vec![0usize; n_firms];
        let mut per_quarter = vec![0usize; panel.n_quarters];
        for (&f, &q) in panel.firm.iter().zip(&panel.quarter) {
            per_firm[f as usize] += 1;
            per_quarter[q as usize] += 1;
        }
        let keep: Vec<bool> = panel
            .firm
            .iter()
            .zip(&panel.quarter)
            .map(|(&f, &q)| per_firm[f as usize] > 1 && per_quarter[q as usize] > 1)
            .collect();
        if keep.iter().all(|k| *k) {
            return dropped_firms;
        }
        dropped_firms += per_firm.iter().filter(|&&c| c == 1).count();
        retain_rows(&mut panel.firm, &keep);
        retain_rows(&mut panel.quarter, &keep);
        retain_rows(&mut panel.y, &keep);
        if !panel.w.is_empty() {
            retain_rows(&mut panel.w, &keep);
        }
        retain_rows(&mut panel.treat_col, &keep);
    }
}

/// Keeps the rows of a panel column whose `keep` flag is set.
fn retain_rows<T>(column: &mut Vec<T>, keep: &[bool]) {
    let mut flags = keep.iter();
    column.retain(|_| flags.next().copied().unwrap_or(false));
}

fn firm_ranges(firm: &[u32]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=firm.len() {
        if i == firm.len() || firm[i] != firm[start] {
            if i > start {
                out.push((start, i));
            }
            start = i;
        }
    }
    out
}

impl Panel {
    /// The weight of row `i` (1 under equal weights).
    pub fn weight(&self, i: usize) -> f64 {
        self.w.get(i).copied().unwrap_or(1.0)
    }
}

/// Columns of a row: its treatment column (if any) and its quarter dummy (if not the first).
fn row_cols(panel: &Panel, i: usize) -> [Option<usize>; 2] {
    let t = panel.treat_col[i];
    let q = panel.quarter[i] as usize;
    [
        (t != u16::MAX).then_some(t as usize),
        (q > 0).then(|| panel.n_treat + q - 1),
    ]
}

/// Firms per block of the Gram's rank-one corrections (a 512 x p matrix product at a time).
const FIRM_BLOCK: usize = 512;

/// Fits the TWFE regression with CR1 standard errors clustered as the panel says.
pub fn fit_cr1(panel: &Panel) -> Result<TwfeFit, EstimateError> {
    let p = panel.n_treat + panel.n_quarters.saturating_sub(1);
    let ranges = firm_ranges(&panel.firm);
    let mut gram = Array2::<f64>::zeros((p, p));
    let mut xty = Array1::<f64>::zeros(p);
    // Per firm: weighted sums (for means) and the sparse column sums s_i = Σ w x.
    let mut firm_w = Vec::with_capacity(ranges.len());
    let mut firm_ybar = Vec::with_capacity(ranges.len());
    let mut s = vec![0.0; p];
    let mut touched: Vec<usize> = Vec::with_capacity(64);
    // mark[c] == stamp: column c already touched by the current firm.
    let mut mark = vec![usize::MAX; p];
    // Gram = Σ_i (X_i'W X_i − s_i s_i'/W_i): the first part row by row (at most two columns per
    // row), the second as V'V with rows v_i = s_i/√W_i, one matrix product per block of firms.
    let mut v = Array2::<f64>::zeros((FIRM_BLOCK, p));
    let mut filled = 0;
    for (fi, &(a, b)) in ranges.iter().enumerate() {
        let mut wsum = KahanSum::default();
        let mut wy = KahanSum::default();
        for i in a..b {
            let w = panel.weight(i);
            wsum.add(w);
            wy.add(w * panel.y[i]);
        }
        let wi = wsum.value();
        let ybar = wy.value() / wi;
        firm_w.push(wi);
        firm_ybar.push(ybar);
        touched.clear();
        for i in a..b {
            let w = panel.weight(i);
            let yc = panel.y[i] - ybar;
            let cols = row_cols(panel, i);
            for c in cols.iter().flatten() {
                if mark[*c] != fi {
                    mark[*c] = fi;
                    touched.push(*c);
                }
                s[*c] += w;
                xty[*c] += w * yc;
            }
            for c1 in cols.iter().flatten() {
                for c2 in cols.iter().flatten() {
                    gram[[*c1, *c2]] += w;
                }
            }
        }
        let root = wi.sqrt();
        for &c in &touched {
            v[[filled, c]] = s[c] / root;
            s[c] = 0.0;
        }
        filled += 1;
        if filled == FIRM_BLOCK || fi + 1 == ranges.len() {
            let block = v.slice_axis(Axis(0), Slice::from(..filled));
            general_mat_mul(-1.0, &block.t(), &block, 1.0, &mut gram);
            v.fill(0.0);
            filled = 0;
        }
    }
    let ginv = invert_gram(&gram);
    for k in 0..panel.n_treat {
        if ginv.dropped.contains(&k) {
            return Err(EstimateError::Singular(format!(
                "the treatment column {} is collinear with the fixed effects (no variation left \
                 after removing firm and quarter effects)",
                k + 1
            )));
        }
    }
    let beta = ginv.inv.dot(&xty);
    // Residuals and CR1 scores: S_g = Σ w (x − x̄_i) e over the cluster's rows.
    // R = the treatment rows of G⁻¹, stored transposed (p x n_treat) so that column c of R is
    // one contiguous row.
    let rt = Array2::from_shape_fn((p, panel.n_treat), |(c, t)| ginv.inv[[t, c]]);
    let mut meat = Array2::<f64>::zeros((panel.n_treat, panel.n_treat));
    // Per cluster only u_g = R S_g (n_treat values), not the p-vector S_g: R S_g is accumulated
    // firm by firm from the firm's (sparse) score.
    let nt = panel.n_treat;
    let mut cluster_u = vec![0.0; panel.n_clusters * nt];
    let mut cluster_seen = vec![false; panel.n_clusters];
    let mut sc = vec![0.0; p];
    mark.fill(usize::MAX);
    for (fi, &(a, b)) in ranges.iter().enumerate() {
        let f = panel.firm[a] as usize;
        let wi = firm_w[fi];
        // x̄_i'β and the firm's score.
        let mut sbeta = 0.0;
        touched.clear();
        for i in a..b {
            for c in row_cols(panel, i).iter().flatten() {
                if mark[*c] != fi {
                    mark[*c] = fi;
                    touched.push(*c);
                }
                s[*c] += panel.weight(i);
            }
        }
        for &c in &touched {
            sbeta += s[c] * beta[c];
        }
        let xbar_beta = sbeta / wi;
        let mut sum_we = 0.0;
        for i in a..b {
            let cols = row_cols(panel, i);
            let xb: f64 = cols.iter().flatten().map(|c| beta[*c]).sum();
            let e = (panel.y[i] - firm_ybar[fi]) - (xb - xbar_beta);
            let we = panel.weight(i) * e;
            sum_we += we;
            for c in cols.iter().flatten() {
                sc[*c] += we;
            }
        }
        let g = panel.firm_cluster[f] as usize;
        cluster_seen[g] = true;
        let u = &mut cluster_u[g * nt..(g + 1) * nt];
        for &c in &touched {
            // Subtract x̄_i Σ w e (zero up to rounding).
            let score = sc[c] - s[c] / wi * sum_we;
            for (u_t, r_tc) in u.iter_mut().zip(rt.row(c)) {
                *u_t += r_tc * score;
            }
            sc[c] = 0.0;
            s[c] = 0.0;
        }
    }
    let mut n_clusters = 0;
    for (g, u) in cluster_u.chunks_exact(nt.max(1)).enumerate() {
        if !cluster_seen.get(g).copied().unwrap_or(false) {
            continue;
        }
        n_clusters += 1;
        for a in 0..nt {
            for b in 0..nt {
                meat[[a, b]] += u[a] * u[b];
            }
        }
    }
    if n_clusters < 2 {
        return Err(EstimateError::TooFewClusters(format!(
            "{n_clusters} cluster(s) in the panel; cluster-robust standard errors need at least 2"
        )));
    }
    let n_obs = panel.y.len();
    // K as pyfixest counts it: the coefficients plus every level of the quarter effect (the firm
    // effects are nested in the clusters and not counted), i.e. the kept columns plus one.
    let k = ginv.kept.len() + 1;
    let g = n_clusters as f64;
    let n = n_obs as f64;
    if n_obs <= k {
        return Err(EstimateError::Singular(format!(
            "{n_obs} rows for {k} coefficients and quarter effects"
        )));
    }
    let ssc_factor = g / (g - 1.0) * (n - 1.0) / (n - k as f64);
    let vcov_cr1 = meat.mapv(|v| v * ssc_factor);
    Ok(TwfeFit {
        beta,
        ginv,
        vcov_cr1,
        ssc_factor,
        n_obs,
        k,
        n_clusters,
        n_firms: ranges.len(),
    })
}

/// Below this bound on the largest eigenvalue of a cluster's X̃_s M X̃_s' (its trace), the
/// equal-weights adjustment is applied by its power series in p-space ([`PanelCr2::equal_fast`]).
const SERIES_MAX: f64 = 0.25;

/// The series stops once its tail is below this fraction of the result.
const SERIES_TAIL: f64 = 1e-17;

/// CR2 variance and Satterthwaite df of every treatment coefficient, cluster by cluster
/// ([`super::cr2`]): each cluster's adjustment from its own rows, its firms' means and the inverse
/// Gram of `fit`; the n x p projected design is never built.
///
/// # Errors
/// [`EstimateError::Cancelled`] once `progress` is cancelled.
pub fn cr2(
    panel: &Panel,
    fit: &TwfeFit,
    progress: &Progress,
) -> Result<Vec<ols::Cr2>, EstimateError> {
    cr2_with(panel, fit, SERIES_MAX, Roots::Auto, progress)
}

fn cr2_with(
    panel: &Panel,
    fit: &TwfeFit,
    series_max: f64,
    roots: Roots,
    progress: &Progress,
) -> Result<Vec<ols::Cr2>, EstimateError> {
    progress.check()?;
    let design = PanelCr2::new(panel, fit, series_max);
    if design.weighted {
        cr2::cr2_weighted(&design, roots, Some(progress))
    } else {
        cr2::cr2_equal(&design, roots, Some(progress))
    }
}

/// The panel as [`Cr2Design`] sees it: the levels of the absorbed factor are the firms (nested in
/// the clusters), each cluster's projected rows x̃_i = √w_i (x_i − x̄_f) are built from the sparse
/// rows and the firm's weighted mean when asked for, and the estimands are the treatment
/// coefficients (influence X̃ M e_k).
struct PanelCr2<'a> {
    panel: &'a Panel,
    p: usize,
    m: &'a Array2<f64>,
    beta: &'a Array1<f64>,
    /// M e_k per treatment coefficient (p x n_treat).
    f: Array2<f64>,
    /// Rows of each firm with rows (the level is the index here).
    ranges: Vec<(usize, usize)>,
    firm_w: Vec<f64>,
    firm_ybar: Vec<f64>,
    /// The firms of cluster s are `cl_firms[cl_start[s]..cl_start[s + 1]]`.
    cl_start: Vec<usize>,
    cl_firms: Vec<u32>,
    series_max: f64,
    weighted: bool,
}

impl<'a> PanelCr2<'a> {
    fn new(panel: &'a Panel, fit: &'a TwfeFit, series_max: f64) -> Self {
        let p = panel.n_treat + panel.n_quarters.saturating_sub(1);
        let ranges = firm_ranges(&panel.firm);
        let mut firm_w = Vec::with_capacity(ranges.len());
        let mut firm_ybar = Vec::with_capacity(ranges.len());
        for &(a, b) in &ranges {
            let mut wsum = KahanSum::default();
            let mut wy = KahanSum::default();
            for i in a..b {
                let w = panel.weight(i);
                wsum.add(w);
                wy.add(w * panel.y[i]);
            }
            firm_w.push(wsum.value());
            firm_ybar.push(wy.value() / wsum.value());
        }
        // Firms by cluster (counting sort, firms in order within a cluster); clusters without
        // rows are left out.
        let mut count = vec![0usize; panel.n_clusters + 1];
        for &(a, _) in &ranges {
            count[panel.firm_cluster[panel.firm[a] as usize] as usize + 1] += 1;
        }
        for g in 0..panel.n_clusters {
            count[g + 1] += count[g];
        }
        let mut next = count.clone();
        let mut cl_firms = vec![0u32; ranges.len()];
        for (fi, &(a, _)) in ranges.iter().enumerate() {
            let g = panel.firm_cluster[panel.firm[a] as usize] as usize;
            cl_firms[next[g]] = fi as u32;
            next[g] += 1;
        }
        let mut cl_start: Vec<usize> = vec![0];
        for g in 0..panel.n_clusters {
            if count[g + 1] > count[g] {
                cl_start.push(count[g + 1]);
            }
        }
        let f = Array2::from_shape_fn((p, panel.n_treat), |(c, k)| fit.ginv.inv[[c, k]]);
        PanelCr2 {
            panel,
            p,
            m: &fit.ginv.inv,
            beta: &fit.beta,
            f,
            ranges,
            firm_w,
            firm_ybar,
            cl_start,
            cl_firms,
            series_max,
            weighted: !panel.w.is_empty(),
        }
    }

    fn firms(&self, s: usize) -> &[u32] {
        &self.cl_firms[self.cl_start[s]..self.cl_start[s + 1]]
    }

    /// The firm's column sums of w (into `sums`, the columns touched listed in `touched`).
    fn column_sums(&self, fi: usize, sums: &mut [f64], touched: &mut Vec<usize>) {
        touched.clear();
        let (a, b) = self.ranges[fi];
        for i in a..b {
            let w = self.panel.weight(i);
            for c in row_cols(self.panel, i).iter().flatten() {
                // (weights are positive: a zero sum is a column not yet touched)
                if sums[*c] == 0.0 && (w > 0.0 || !touched.contains(c)) {
                    touched.push(*c);
                }
                sums[*c] += w;
            }
        }
    }

    /// The residual of row `i` of firm `fi` (original scale), given x̄_f'β.
    fn residual(&self, fi: usize, i: usize, xbar_beta: f64) -> f64 {
        let xb: f64 = row_cols(self.panel, i)
            .iter()
            .flatten()
            .map(|c| self.beta[*c])
            .sum();
        (self.panel.y[i] - self.firm_ybar[fi]) - (xb - xbar_beta)
    }
}

impl Cr2Design for PanelCr2<'_> {
    fn m(&self) -> &Array2<f64> {
        self.m
    }

    fn n_estimands(&self) -> usize {
        self.panel.n_treat
    }

    fn n_clusters(&self) -> usize {
        self.cl_start.len() - 1
    }

    fn nested(&self) -> bool {
        true
    }

    fn level_w(&self, g: u32) -> f64 {
        self.firm_w[g as usize]
    }

    fn rows(&self, s: usize) -> ClusterRows {
        let p = self.p;
        let firms = self.firms(s);
        let ns: usize = firms
            .iter()
            .map(|&fi| self.ranges[fi as usize].1 - self.ranges[fi as usize].0)
            .sum();
        let mut xt = Array2::<f64>::zeros((ns, p));
        let mut sqw = Vec::with_capacity(ns);
        let mut level = Vec::with_capacity(ns);
        let mut et = Vec::with_capacity(ns);
        let mut xbar = vec![0.0; p];
        let mut touched = Vec::new();
        let mut row = 0;
        for &fi in firms {
            let fi = fi as usize;
            let wf = self.firm_w[fi];
            self.column_sums(fi, &mut xbar, &mut touched);
            let mut xbar_beta = 0.0;
            for &c in &touched {
                xbar[c] /= wf;
                xbar_beta += xbar[c] * self.beta[c];
            }
            let (a, b) = self.ranges[fi];
            for i in a..b {
                let sw = self.panel.weight(i).sqrt();
                let mut r = xt.row_mut(row);
                for &c in &touched {
                    r[c] = -sw * xbar[c];
                }
                for c in row_cols(self.panel, i).iter().flatten() {
                    r[*c] += sw;
                }
                sqw.push(sw);
                level.push(fi as u32);
                et.push(sw * self.residual(fi, i, xbar_beta));
                row += 1;
            }
            for &c in &touched {
                xbar[c] = 0.0;
            }
        }
        let infl = xt.dot(&self.f);
        ClusterRows {
            sqw,
            level,
            xt,
            et,
            infl,
        }
    }

    /// S = Σ_i w_i x̃_i x̃_i' = Σ_f [Σ_i w_i² x_i x_i' + c_f v_f v_f' − a_f a_f'/c_f] with
    /// a_f = Σ_i w_i² x_i, c_f = Σ_i w_i² and v_f = x̄_f − a_f/c_f: the sparse part row by row,
    /// the two rank-one parts one matrix product per block of firms.
    fn s_mat(&self) -> Array2<f64> {
        let p = self.p;
        let mut s = Array2::<f64>::zeros((p, p));
        let mut v1 = Array2::<f64>::zeros((FIRM_BLOCK, p));
        let mut v2 = Array2::<f64>::zeros((FIRM_BLOCK, p));
        let mut sums = vec![0.0; p];
        let mut acol = vec![0.0; p];
        let mut touched = Vec::new();
        let mut filled = 0;
        for (fi, &(a, b)) in self.ranges.iter().enumerate() {
            let wf = self.firm_w[fi];
            self.column_sums(fi, &mut sums, &mut touched);
            let mut c2 = 0.0;
            for i in a..b {
                let w = self.panel.weight(i);
                c2 += w * w;
                let cols = row_cols(self.panel, i);
                for c in cols.iter().flatten() {
                    acol[*c] += w * w;
                    for d in cols.iter().flatten() {
                        s[[*c, *d]] += w * w;
                    }
                }
            }
            let root = c2.sqrt();
            for &c in &touched {
                v1[[filled, c]] = root * (sums[c] / wf - acol[c] / c2);
                v2[[filled, c]] = acol[c] / root;
                sums[c] = 0.0;
                acol[c] = 0.0;
            }
            filled += 1;
            if filled == FIRM_BLOCK || fi + 1 == self.ranges.len() {
                let b1 = v1.slice_axis(Axis(0), Slice::from(..filled));
                let b2 = v2.slice_axis(Axis(0), Slice::from(..filled));
                general_mat_mul(1.0, &b1.t(), &b1, 1.0, &mut s);
                general_mat_mul(-1.0, &b2.t(), &b2, 1.0, &mut s);
                v1.fill(0.0);
                v2.fill(0.0);
                filled = 0;
            }
        }
        s
    }

    /// Equal weights: the firms' means put B_s = I − Σ_f u_f u_f' − N with N = X̃_s M X̃_s', N u_f = 0
    /// (u_f = √w/√W_f on firm f's rows), and the influence X̃_s f_k is orthogonal to every u_f, so
    /// A_s X̃_s f_k = (I − N)^{-1/2} X̃_s f_k = X̃_s y_k with y_k = Σ_j c_j (M G_s)^j f_k
    /// (c_j = binom(2j, j)/4^j, G_s = X̃_s'X̃_s), and q'e = y_k'X̃_s'e_s, q'q = y_k'G_s y_k,
    /// u = G_s y_k, the level sums Σ √w q = 0. N's largest eigenvalue is at most t = tr(M G_s); for
    /// t < `series_max` the series is summed until its tail, at most t^{J+1}/(1 − t) of the result,
    /// is below [`SERIES_TAIL`]. G_s is applied from the sparse rows ([`SparseGram`], O(rows) per
    /// product) and M densely, so a term costs about p² (p² n_treat for the event study) instead of
    /// the n_s³ of the cluster's root.
    fn equal_fast(&self, s: usize) -> Option<Vec<EqualOut>> {
        if self.weighted || self.series_max <= 0.0 {
            return None;
        }
        let p = self.p;
        let m = self.m;
        let gs = SparseGram::new(self, s);
        if gs.rows.len() < p {
            return gs.series_in_rows(m, &self.f, self.series_max);
        }
        let t = gs.trace_m(m);
        if t.is_nan() || t >= self.series_max {
            return None;
        }
        let mut y = self.f.clone();
        let mut z = self.f.clone();
        let mut c = 1.0;
        let mut tail = t / (1.0 - t);
        let mut j = 0.0;
        while tail > SERIES_TAIL {
            j += 1.0;
            z = mdot(m, &gs.apply(&z));
            c *= (2.0 * j - 1.0) / (2.0 * j);
            y.scaled_add(c, &z);
            tail *= t;
        }
        let u = gs.apply(&y);
        let mu = mdot(m, &u);
        debug_assert_eq!(u.nrows(), p);
        Some(
            (0..self.panel.n_treat)
                .map(|k| {
                    let (yk, uk) = (y.column(k), u.column(k));
                    EqualOut {
                        score: yk.dot(&gs.score),
                        d: yk.dot(&uk),
                        v: Vec::new(),
                        u: uk.to_owned(),
                        umu: uk.dot(&mu.column(k)),
                    }
                })
                .collect(),
        )
    }
}

/// M Z, as a matrix-vector product when Z has one column (`did_twfe`).
fn mdot(m: &Array2<f64>, z: &Array2<f64>) -> Array2<f64> {
    if z.ncols() == 1 {
        let v = m.dot(&z.column(0));
        let n = v.len();
        v.into_shape_with_order((n, 1))
            .unwrap_or_else(|_| Array2::zeros((n, 1)))
    } else {
        m.dot(z)
    }
}

/// One cluster's G_s = X̃_s'X̃_s = Σ_f [Σ_{i∈f} w_i x_i x_i' − s_f s_f'/W_f] (s_f the firm's column
/// sums of w) kept sparse: its rows' columns and weights and its firms' column sums, so that G_s z
/// costs O(rows + columns touched) instead of p²; and the cluster's score X̃_s'e_s.
struct SparseGram {
    /// Per row: its columns and weight.
    rows: Vec<([Option<usize>; 2], f64)>,
    /// Per row: its residual (√w space).
    et: Vec<f64>,
    /// Per firm: the range of `cols` holding its (column, column sum), W_f, and its rows' range.
    firms: Vec<(usize, usize, f64, usize, usize)>,
    cols: Vec<(usize, f64)>,
    /// X̃_s'e_s (p).
    score: Array1<f64>,
}

impl SparseGram {
    fn new(d: &PanelCr2<'_>, s: usize) -> Self {
        let p = d.p;
        let mut rows = Vec::new();
        let mut et = Vec::new();
        let mut firms = Vec::new();
        let mut cols = Vec::new();
        let mut score = Array1::<f64>::zeros(p);
        let mut sums = vec![0.0; p];
        let mut touched = Vec::new();
        for &fi in d.firms(s) {
            let fi = fi as usize;
            let wf = d.firm_w[fi];
            d.column_sums(fi, &mut sums, &mut touched);
            let xbar_beta: f64 = touched.iter().map(|&c| sums[c] / wf * d.beta[c]).sum();
            let (a, b) = d.ranges[fi];
            let mut sum_we = 0.0;
            let row_start = rows.len();
            for i in a..b {
                let w = d.panel.weight(i);
                let rc = row_cols(d.panel, i);
                let e = d.residual(fi, i, xbar_beta);
                et.push(w.sqrt() * e);
                let we = w * e;
                sum_we += we;
                for c in rc.iter().flatten() {
                    score[*c] += we;
                }
                rows.push((rc, w));
            }
            let start = cols.len();
            for &c in &touched {
                score[c] -= sums[c] / wf * sum_we;
                cols.push((c, sums[c]));
                sums[c] = 0.0;
            }
            firms.push((start, cols.len(), wf, row_start, rows.len()));
        }
        SparseGram {
            rows,
            et,
            firms,
            cols,
            score,
        }
    }

    /// G_s Z.
    fn apply(&self, z: &Array2<f64>) -> Array2<f64> {
        let k = z.ncols();
        let mut out = Array2::<f64>::zeros(z.dim());
        let (Some(zs), Some(os)) = (z.as_slice(), out.as_slice_mut()) else {
            return self.apply_views(z);
        };
        if k == 1 {
            for (rc, w) in &self.rows {
                let xz: f64 = rc.iter().flatten().map(|c| zs[*c]).sum();
                for c in rc.iter().flatten() {
                    os[*c] += w * xz;
                }
            }
            for &(a, b, wf, _, _) in &self.firms {
                let sz: f64 = self.cols[a..b].iter().map(|&(c, sc)| sc * zs[c]).sum();
                for &(c, sc) in &self.cols[a..b] {
                    os[c] -= sc / wf * sz;
                }
            }
            return out;
        }
        let mut xz = vec![0.0; k];
        for (rc, w) in &self.rows {
            xz.fill(0.0);
            for c in rc.iter().flatten() {
                for (e, v) in xz.iter_mut().zip(&zs[c * k..(c + 1) * k]) {
                    *e += v;
                }
            }
            for c in rc.iter().flatten() {
                for (o, v) in os[c * k..(c + 1) * k].iter_mut().zip(&xz) {
                    *o += w * v;
                }
            }
        }
        for &(a, b, wf, _, _) in &self.firms {
            xz.fill(0.0);
            for &(c, sc) in &self.cols[a..b] {
                for (e, v) in xz.iter_mut().zip(&zs[c * k..(c + 1) * k]) {
                    *e += sc * v;
                }
            }
            for &(c, sc) in &self.cols[a..b] {
                for (o, v) in os[c * k..(c + 1) * k].iter_mut().zip(&xz) {
                    *o -= sc / wf * v;
                }
            }
        }
        out
    }

    /// [`SparseGram::apply`] on a matrix not in standard layout.
    fn apply_views(&self, z: &Array2<f64>) -> Array2<f64> {
        self.apply(&z.as_standard_layout().to_owned())
    }

    /// The series of [`PanelCr2::equal_fast`] in the cluster's rows instead of in p-space, for a
    /// cluster with fewer rows than columns (the event study): with N = X̃_s M X̃_s' (n_s x n_s,
    /// built from M's rows picked by the sparse rows and the firms' x̄_f'M), q_k = Σ_j c_j N^j b_k
    /// with b_k = X̃_s M e_k, so a term costs n_s² n_treat instead of p² n_treat; t = tr(N).
    fn series_in_rows(
        &self,
        m: &Array2<f64>,
        f: &Array2<f64>,
        series_max: f64,
    ) -> Option<Vec<EqualOut>> {
        let p = m.nrows();
        let k = f.ncols();
        let ns = self.rows.len();
        // XM = X̃_s M, row r: √w_r (Σ_{c ∈ x_r} M[c, :] − x̄_f'M).
        let mut xm = Array2::<f64>::zeros((ns, p));
        let mut xbm = Array1::<f64>::zeros(p);
        for &(a, b, wf, ra, rb) in &self.firms {
            xbm.fill(0.0);
            for &(c, sc) in &self.cols[a..b] {
                xbm.scaled_add(sc / wf, &m.row(c));
            }
            for r in ra..rb {
                let (rc, w) = &self.rows[r];
                let sw = w.sqrt();
                let mut row = xm.row_mut(r);
                row.scaled_add(-sw, &xbm);
                for c in rc.iter().flatten() {
                    row.scaled_add(sw, &m.row(*c));
                }
            }
        }
        // N[r, q] = XM_r · x̃_q = √w_q (Σ_{c ∈ x_q} XM[r, c] − Σ_{c ∈ f(q)} s_c/W_f XM[r, c]).
        let mut n = Array2::<f64>::zeros((ns, ns));
        for &(a, b, wf, ra, rb) in &self.firms {
            for r in 0..ns {
                let xr = xm.row(r);
                let mean: f64 = self.cols[a..b].iter().map(|&(c, sc)| sc / wf * xr[c]).sum();
                for q in ra..rb {
                    let (rc, w) = &self.rows[q];
                    let v: f64 = rc.iter().flatten().map(|c| xr[*c]).sum();
                    n[[r, q]] = w.sqrt() * (v - mean);
                }
            }
        }
        let t: f64 = n.diag().sum();
        if t.is_nan() || t >= series_max {
            return None;
        }
        // b_k = X̃_s M e_k: XM's first k columns (the treatment columns).
        let b = xm.slice_axis(Axis(1), Slice::from(..k)).to_owned();
        let mut q = b.clone();
        let mut z = b;
        let mut c = 1.0;
        let mut tail = t / (1.0 - t);
        let mut j = 0.0;
        while tail > SERIES_TAIL {
            j += 1.0;
            z = n.dot(&z);
            c *= (2.0 * j - 1.0) / (2.0 * j);
            q.scaled_add(c, &z);
            tail *= t;
        }
        let nq = n.dot(&q);
        let et = ArrayView1::from(&self.et);
        Some(
            (0..k)
                .map(|e| {
                    let qk = q.column(e);
                    // u = X̃_s'q: the sparse rows, less each firm's x̄_f Σ √w q.
                    let mut u = Array1::<f64>::zeros(p);
                    for &(a, b, wf, ra, rb) in &self.firms {
                        let mut sq = 0.0;
                        for r in ra..rb {
                            let (rc, w) = &self.rows[r];
                            let v = w.sqrt() * qk[r];
                            sq += v;
                            for c in rc.iter().flatten() {
                                u[*c] += v;
                            }
                        }
                        for &(c, sc) in &self.cols[a..b] {
                            u[c] -= sc / wf * sq;
                        }
                    }
                    EqualOut {
                        score: qk.dot(&et),
                        d: qk.dot(&qk),
                        v: Vec::new(),
                        u,
                        // u'Mu = q'X̃_s M X̃_s'q = q'Nq.
                        umu: qk.dot(&nq.column(e)),
                    }
                })
                .collect(),
        )
    }

    /// tr(M G_s) = Σ_i w_i x_i'M x_i − Σ_f s_f'M s_f / W_f.
    fn trace_m(&self, m: &Array2<f64>) -> f64 {
        let mut t = 0.0;
        for (rc, w) in &self.rows {
            for c1 in rc.iter().flatten() {
                for c2 in rc.iter().flatten() {
                    t += w * m[[*c1, *c2]];
                }
            }
        }
        for &(a, b, wf, _, _) in &self.firms {
            let mut q = 0.0;
            for &(c1, s1) in &self.cols[a..b] {
                let row = m.row(c1);
                let mut r = 0.0;
                for &(c2, s2) in &self.cols[a..b] {
                    r += row[c2] * s2;
                }
                q += s1 * r;
            }
            t -= q / wf;
        }
        t
    }
}

/// CR2 variance and Satterthwaite df of treatment coefficient `k`, from the dense projected design
/// and [`ols::Fit::cr2`]: the oracle of the cluster-by-cluster [`cr2`].
#[cfg(test)]
fn cr2_dense(panel: &Panel, k: usize) -> Result<ols::Cr2, EstimateError> {
    let p = panel.n_treat + panel.n_quarters.saturating_sub(1);
    let n = panel.y.len();
    let mut x = Array2::<f64>::zeros((n, p));
    for i in 0..n {
        for c in row_cols(panel, i).iter().flatten() {
            x[[i, *c]] = 1.0;
        }
    }
    let y = Array1::from(panel.y.clone());
    let w: Array1<f64> = (0..n).map(|i| panel.weight(i)).collect();
    let n_firms = panel.firm_cluster.len();
    let fit = ols::fit(ols::Problem {
        y: y.view(),
        x: x.view(),
        group: &panel.firm,
        n_groups: n_firms,
        weights: Some(w.view()),
    })?;
    let mut d = Array1::<f64>::zeros(p);
    d[k] = 1.0;
    let influence = fit.influence(&vec![0.0; n_firms], d.view());
    let cl: Vec<u32> = panel
        .firm
        .iter()
        .map(|&f| panel.firm_cluster[f as usize])
        .collect();
    fit.cr2(&influence, &ols::Clusters::from_ids(&cl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Uniform numbers in [0, 1) (splitmix64), so that proptest's seed decides the whole panel.
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A random unbalanced panel: firms with different quarters (gaps), half treated, firms in
    /// `n_clusters` clusters (0: one per firm), weights or not; the treatment columns are one
    /// (`did_twfe`: treated from quarter `pre` on) or one per quarter but `pre - 1` (event study).
    fn random_panel(
        seed: u64,
        n_firms: usize,
        n_quarters: usize,
        n_clusters: usize,
        weighted: bool,
        event: bool,
    ) -> Panel {
        let mut next = uniform(seed);
        let pre = n_quarters / 2;
        let n_treat = if event { n_quarters - 1 } else { 1 };
        let col = |q: usize| -> u16 {
            if !event {
                if q >= pre { 0 } else { u16::MAX }
            } else if q + 1 == pre {
                u16::MAX
            } else if q + 1 < pre {
                q as u16
            } else {
                (q - 1) as u16
            }
        };
        let mut p = Panel {
            firm: Vec::new(),
            quarter: Vec::new(),
            y: Vec::new(),
            w: Vec::new(),
            treat_col: Vec::new(),
            n_treat,
            n_quarters,
            firm_cluster: (0..n_firms)
                .map(|f| {
                    if n_clusters == 0 {
                        f as u32
                    } else {
                        (next() * n_clusters as f64) as u32
                    }
                })
                .collect(),
            n_clusters: if n_clusters == 0 { n_firms } else { n_clusters },
        };
        for f in 0..n_firms {
            let treated = f % 2 == 1;
            let level = next() * 10.0;
            for q in 0..n_quarters {
                if next() < 0.2 {
                    continue;
                }
                p.firm.push(f as u32);
                p.quarter.push(q as u16);
                let c = if treated { col(q) } else { u16::MAX };
                p.treat_col.push(c);
                let effect = if c != u16::MAX { -0.5 } else { 0.0 };
                p.y.push(level + 0.1 * q as f64 + effect + next() * 2.0);
                if weighted {
                    p.w.push(20.0 + next() * 500.0);
                }
            }
        }
        drop_singletons(&mut p);
        p
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(1e-300)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Cluster by cluster (by the power series where it applies, and by each cluster's root
        /// without it, dense or low-rank by size, or low-rank everywhere) equals the dense
        /// projected design's CR2 for every treatment coefficient.
        #[test]
        fn per_cluster_cr2_equals_the_dense_oracle(
            seed in any::<u64>(),
            n_firms in 6usize..40,
            n_quarters in 3usize..8,
            n_clusters in prop_oneof![Just(0usize), 3usize..12],
            weighted in any::<bool>(),
            event in any::<bool>(),
        ) {
            let panel = random_panel(seed, n_firms, n_quarters, n_clusters, weighted, event);
            let Ok(fit) = fit_cr1(&panel) else {
                return Err(TestCaseError::reject("no fit"));
            };
            let progress = Progress::new();
            for (series_max, roots) in
                [(0.95, Roots::Auto), (0.0, Roots::Auto), (0.0, Roots::LowRank)]
            {
                let fast = cr2_with(&panel, &fit, series_max, roots, &progress)
                    .expect("cr2");
                for (k, got) in fast.iter().enumerate() {
                    let want = cr2_dense(&panel, k).expect("dense cr2");
                    // A coefficient whose variance is at rounding level (1e-32 here, where a
                    // real one is 1e-4 or more) is identified by noise alone: its df is 0/0 on
                    // both sides, and there is nothing to compare.
                    prop_assume!(want.df.is_finite() && want.variance > 1e-20);
                    prop_assert!(
                        rel(got.variance, want.variance) < 1e-10 && rel(got.df, want.df) < 1e-10,
                        "k {k} series {series_max} {roots:?}: {got:?} dense {want:?}"
                    );
                }
            }
        }
    }

    /// Many clusters, several chunks: one thread and four give the same bits, with and without
    /// weights, for `did_twfe` and the event study.
    #[test]
    fn panel_cr2_is_bit_identical_on_one_thread_and_on_four() {
        for (weighted, event) in [(false, false), (true, false), (false, true)] {
            let panel = random_panel(5, 2600, 6, 0, weighted, event);
            let fit = fit_cr1(&panel).expect("fit");
            let on = |threads: usize| {
                crate::on_threads(threads, || {
                    cr2(&panel, &fit, &Progress::new()).expect("cr2")
                })
            };
            let (one, four) = (on(1), on(4));
            for (a, b) in one.iter().zip(&four) {
                assert_eq!(
                    a.variance.to_bits(),
                    b.variance.to_bits(),
                    "{weighted} {event}"
                );
                assert_eq!(a.df.to_bits(), b.df.to_bits(), "{weighted} {event}");
            }
        }
    }

    /// A cancelled computation stops with `Cancelled`.
    #[test]
    fn a_cancelled_cr2_stops() {
        let panel = random_panel(9, 300, 5, 0, false, false);
        let fit = fit_cr1(&panel).expect("fit");
        let progress = Progress::new();
        progress.cancel();
        assert!(matches!(
            cr2(&panel, &fit, &progress),
            Err(EstimateError::Cancelled)
        ));
    }

    /// At register scale the series path is the one taken (every cluster small against the
    /// panel), and it agrees with the clusters' own roots.
    #[test]
    fn the_series_and_the_roots_agree_on_many_firms() {
        for event in [false, true] {
            let panel = random_panel(3, 1500, 8, 0, false, event);
            let fit = fit_cr1(&panel).expect("fit");
            let progress = Progress::new();
            let design = PanelCr2::new(&panel, &fit, SERIES_MAX);
            assert!((0..design.n_clusters()).all(|s| design.equal_fast(s).is_some()));
            let series = cr2(&panel, &fit, &progress).expect("cr2");
            let roots = cr2_with(&panel, &fit, 0.0, Roots::Auto, &progress).expect("cr2");
            for (a, b) in series.iter().zip(&roots) {
                assert!(rel(a.variance, b.variance) < 1e-12, "{a:?} {b:?}");
                assert!(rel(a.df, b.df) < 1e-12, "{a:?} {b:?}");
            }
        }
    }
}
