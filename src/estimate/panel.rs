//! Two-way fixed effects on the firm-quarter panel: `did_twfe` and `event_study`.
//!
//! Firm effects are absorbed exactly by (weighted) within-firm demeaning; quarter effects enter as
//! explicit dummies (one per quarter but the first), which after demeaning is the exact two-way
//! projection on an unbalanced panel, with no iteration. Every row has at most two non-zero
//! regressors (one treatment column and one quarter), so the normal equations are accumulated firm
//! by firm from sparse rows and the n x p design is never built: memory is the panel's own columns
//! plus O(firms) (docs/statistics.md A.5). The within-firm part of the Gram matrix, Σ_i s_i s_i'/W_i,
//! is one matrix product per block of firms. CR1 keeps, per cluster, only R S_g (R the treatment
//! rows of the inverse Gram, S_g the cluster's score), n_treat numbers. CR2 builds the dense
//! projected design and uses [`super::ols`], so it is meant for designs with few clusters.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Axis, Slice};

use super::EstimateError;
use super::linalg::{GramInverse, KahanSum, invert_gram};
use super::ols::{self, Clusters, Problem};
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
    fn weight(&self, i: usize) -> f64 {
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

/// Rows times columns above which CR2 (which builds the dense projected design) is refused.
pub const CR2_MAX_CELLS: usize = 60_000_000;

/// CR2 variance and Satterthwaite df of treatment coefficient `k`, from the dense projected design.
///
/// # Errors
/// A design too large, a singular one, or [`EstimateError::Cancelled`].
pub fn cr2(panel: &Panel, k: usize, progress: &Progress) -> Result<ols::Cr2, EstimateError> {
    progress.check()?;
    let p = panel.n_treat + panel.n_quarters.saturating_sub(1);
    let n = panel.y.len();
    if n.saturating_mul(p) > CR2_MAX_CELLS {
        return Err(EstimateError::Design(format!(
            "CR2 on {n} rows x {p} columns would build a {} MB design; CR2 is for designs with few \
             clusters, use CR1 at this size",
            n * p * 8 / 1_000_000
        )));
    }
    let mut x = Array2::<f64>::zeros((n, p));
    for i in 0..n {
        for c in row_cols(panel, i).iter().flatten() {
            x[[i, *c]] = 1.0;
        }
    }
    let y = Array1::from(panel.y.clone());
    let w: Array1<f64> = (0..n).map(|i| panel.weight(i)).collect();
    let n_firms = panel.firm_cluster.len();
    let fit = ols::fit(Problem {
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
    progress.check()?;
    fit.cr2(&influence, &Clusters::from_ids(&cl))
}
