//! Small dense linear algebra for the projected systems (a few to a few dozen columns): a Cholesky
//! inverse with a rank check that drops collinear columns in order (as R's `lm` does), a symmetric
//! eigendecomposition (cyclic Jacobi, accurate to rounding) and the symmetric square root of a
//! Moore-Penrose inverse for CR2. Large matrices never come here: fixed effects are absorbed first.

use ndarray::{Array1, Array2};

/// A column whose squared residual norm, relative to its own norm, falls below this after the
/// earlier columns are projected out is collinear (R's `lm` drops at a relative norm of 1e-7; the
/// Cholesky of the normal equations sees the square, plus rounding of the cross products).
pub const COLLINEAR_TOL: f64 = 1e-11;

/// Eigenvalues below this are treated as zero in the CR2 pseudo-inverse (estimatr 2.0's clamp).
pub const EIGEN_CLAMP: f64 = 1e-12;

/// The real roots of a·t² − 2b·t + c = 0 (`a` may be 0: then the one root of the line, if any),
/// without cancellation: q = b + sign(b)√(b² − ac), roots q/a and c/q. A double root once.
/// The Anderson-Rubin set and the randomization-inference interval both invert such quadratics.
pub fn quadratic_roots(a: f64, b: f64, c: f64) -> Vec<f64> {
    if a == 0.0 {
        return if b == 0.0 {
            Vec::new()
        } else {
            vec![c / (2.0 * b)]
        };
    }
    let disc = b * b - a * c;
    if disc < 0.0 {
        return Vec::new();
    }
    if disc == 0.0 {
        return vec![b / a];
    }
    let q = b + b.signum() * disc.sqrt();
    if q == 0.0 {
        let r = (-c / a).sqrt();
        return vec![-r, r];
    }
    vec![q / a, c / q]
}

/// The inverse of a Gram matrix over its linearly independent columns.
#[derive(Debug, Clone)]
pub struct GramInverse {
    /// Columns kept, in order.
    pub kept: Vec<usize>,
    /// Columns dropped as linear combinations of earlier ones.
    pub dropped: Vec<usize>,
    /// p x p inverse; rows and columns of dropped columns are zero.
    pub inv: Array2<f64>,
}

/// Inverts a symmetric positive semi-definite Gram matrix `X'X`, dropping (in column order) every
/// column that is a linear combination of the columns before it.
pub fn invert_gram(gram: &Array2<f64>) -> GramInverse {
    let p = gram.nrows();
    // Equilibrate so every diagonal is 1: the rank test is then relative to each column's norm.
    let scale: Vec<f64> = (0..p)
        .map(|j| {
            let d = gram[[j, j]];
            if d > 0.0 && d.is_finite() {
                1.0 / d.sqrt()
            } else {
                0.0
            }
        })
        .collect();
    let mut kept: Vec<usize> = Vec::with_capacity(p);
    let mut dropped = Vec::new();
    // Lower-triangular factor over kept columns, row-major by kept index.
    let mut l: Vec<Vec<f64>> = Vec::with_capacity(p);
    for j in 0..p {
        if scale[j] == 0.0 {
            dropped.push(j);
            continue;
        }
        let mut row = Vec::with_capacity(kept.len() + 1);
        for (a, &ka) in kept.iter().enumerate() {
            let g = gram[[j, ka]] * scale[j] * scale[ka];
            let s: f64 = (0..a).map(|b| row[b] * l[a][b]).sum();
            row.push((g - s) / l[a][a]);
        }
        let d = 1.0 - row.iter().map(|v| v * v).sum::<f64>();
        if d <= COLLINEAR_TOL {
            dropped.push(j);
            continue;
        }
        row.push(d.sqrt());
        l.push(row);
        kept.push(j);
    }
    // inv(L L') = L^-T L^-1; compute L^-1 column by column.
    let k = kept.len();
    let mut linv = vec![vec![0.0; k]; k];
    for c in 0..k {
        linv[c][c] = 1.0 / l[c][c];
        for r in c + 1..k {
            let s: f64 = (c..r).map(|m| l[r][m] * linv[m][c]).sum();
            linv[r][c] = -s / l[r][r];
        }
    }
    let mut inv = Array2::zeros((p, p));
    for a in 0..k {
        for b in 0..=a {
            let s: f64 = (a..k).map(|m| linv[m][a] * linv[m][b]).sum();
            let v = s * scale[kept[a]] * scale[kept[b]];
            inv[[kept[a], kept[b]]] = v;
            inv[[kept[b], kept[a]]] = v;
        }
    }
    GramInverse { kept, dropped, inv }
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix: Householder reduction to
/// tridiagonal form and the implicit QL algorithm (EISPACK tred2/tql2, as in JAMA), on a flat
/// column-major buffer: every O(n³) loop of the two runs down a column of V, so it reads memory
/// in order (in row-major order the same loops stride by n, and the eigen took four times as
/// long on the CR2 roots of large clusters). The arithmetic is JAMA's, in its order.
pub fn sym_eigen(a: &Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let n = a.nrows();
    // Column-major: element (i, j) at j * n + i.
    let mut v: Vec<f64> = a.t().iter().copied().collect();
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    if n == 0 {
        return (Array1::zeros(0), Array2::zeros((0, 0)));
    }
    tred2(n, &mut v, &mut d, &mut e);
    tql2(n, &mut d, &mut e, |i, c, s| {
        // Column i + 1 and column i of V (contiguous in the column-major buffer).
        let (left, right) = v.split_at_mut((i + 1) * n);
        let (vi, vi1) = (&mut left[i * n..], &mut right[..n]);
        for (a, b) in vi.iter_mut().zip(vi1.iter_mut()) {
            let h = *b;
            *b = s * *a + c * h;
            *a = c * *a - s * h;
        }
    });
    let vecs = Array2::from_shape_fn((n, n), |(i, j)| v[j * n + i]);
    (Array1::from(d), vecs)
}

fn tred2(n: usize, v: &mut [f64], d: &mut [f64], e: &mut [f64]) {
    let at = |i: usize, j: usize| j * n + i;
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for k in 0..i {
            scale += d[k].abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
                v[at(j, i)] = 0.0;
            }
        } else {
            for k in 0..i {
                d[k] /= scale;
                h += d[k] * d[k];
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for j in 0..i {
                e[j] = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[at(j, i)] = f;
                g = e[j] + v[at(j, j)] * f;
                for k in j + 1..i {
                    g += v[at(k, j)] * d[k];
                    e[k] += v[at(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[at(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    for i in 0..n - 1 {
        v[at(n - 1, i)] = v[at(i, i)];
        v[at(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[at(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[at(k, i + 1)] * v[at(k, j)];
                }
                for k in 0..=i {
                    v[at(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[at(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
        v[at(n - 1, j)] = 0.0;
    }
    v[at(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;
}

/// The implicit QL iterations on the tridiagonal (d, e); each plane rotation (i, c, s) of
/// columns i and i + 1 goes to `rotate`, which applies it to the eigenvectors or records it.
fn tql2(n: usize, d: &mut [f64], e: &mut [f64], mut rotate: impl FnMut(usize, f64, f64)) {
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        if m == n {
            m = n - 1;
        }
        if m > l {
            let mut iter = 0;
            loop {
                iter += 1;
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for i in l + 2..n {
                    d[i] -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    rotate(i, c, s);
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 || iter > 60 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
}

/// The symmetric square root of the Moore-Penrose inverse of a symmetric PSD matrix.
pub fn sqrt_pinv(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let (lambda, v) = sym_eigen(a);
    let vs = v.as_slice().unwrap_or(&[]);
    let mut out = vec![0.0; n * n];
    for k in 0..n {
        if lambda[k] <= EIGEN_CLAMP {
            continue;
        }
        let f = 1.0 / lambda[k].sqrt();
        for i in 0..n {
            let vi = vs[i * n + k] * f;
            if vi == 0.0 {
                continue;
            }
            let row = &mut out[i * n..(i + 1) * n];
            for (j, o) in row.iter_mut().enumerate() {
                *o += vi * vs[j * n + k];
            }
        }
    }
    Array2::from_shape_vec((n, n), out).unwrap_or_else(|_| Array2::zeros((n, n)))
}

/// `A^{+1/2} B` for a symmetric PSD `A` (the clamp of [`sqrt_pinv`]) and the columns of `B`,
/// without the n x n root or even the eigenvectors: with A = H R Λ R'H' (H the Householder
/// reduction, R the QL rotations), V'B = R'(H'B) takes each rotation on the k columns of B
/// instead of on the n columns of V, about 2.7 n³ + 8 n² k in all where the eigenvectors alone
/// cost another 4.5 n³ (the CR2 roots of large clusters, issue 12). The eigenvalues are those of
/// [`sym_eigen`], bit for bit.
pub fn sqrt_pinv_apply(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    if n == 0 {
        return Array2::zeros(b.dim());
    }
    let mut v: Vec<f64> = a.t().iter().copied().collect();
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    tred2(n, &mut v, &mut d, &mut e);
    let mut rotations: Vec<(usize, f64, f64)> = Vec::new();
    tql2(n, &mut d, &mut e, |i, c, s| rotations.push((i, c, s)));
    let h = Array2::from_shape_fn((n, n), |(i, j)| v[j * n + i]);
    let mut y = h.t().dot(b);
    let k = y.ncols();
    let rows = |y: &mut Array2<f64>, i: usize, f: &dyn Fn(f64, f64) -> (f64, f64)| {
        for j in 0..k {
            let (a, b) = f(y[[i, j]], y[[i + 1, j]]);
            y[[i, j]] = a;
            y[[i + 1, j]] = b;
        }
    };
    for &(i, c, s) in &rotations {
        rows(&mut y, i, &|a, b| (c * a - s * b, s * a + c * b));
    }
    for (r, mut row) in y.axis_iter_mut(ndarray::Axis(0)).enumerate() {
        let f = if d[r] <= EIGEN_CLAMP {
            0.0
        } else {
            1.0 / d[r].sqrt()
        };
        row.mapv_inplace(|x| x * f);
    }
    for &(i, c, s) in rotations.iter().rev() {
        rows(&mut y, i, &|a, b| (c * a + s * b, -s * a + c * b));
    }
    h.dot(&y)
}

/// Neumaier-compensated sum.
#[derive(Debug, Default, Clone, Copy)]
pub struct KahanSum {
    sum: f64,
    c: f64,
}

impl KahanSum {
    /// Adds one term.
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.c += (self.sum - t) + x;
        } else {
            self.c += (x - t) + self.sum;
        }
        self.sum = t;
    }

    /// The sum so far.
    pub fn value(&self) -> f64 {
        self.sum + self.c
    }
}

/// Compensated sum of an iterator.
pub fn ksum(it: impl IntoIterator<Item = f64>) -> f64 {
    let mut s = KahanSum::default();
    for x in it {
        s.add(x);
    }
    s.value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn matmul(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        a.dot(b)
    }

    #[test]
    fn inverse_of_a_full_rank_gram_matrix() {
        let g = array![[4.0, 2.0, 0.6], [2.0, 5.0, 1.0], [0.6, 1.0, 3.0]];
        let r = invert_gram(&g);
        assert_eq!(r.kept, vec![0, 1, 2]);
        let id = matmul(&g, &r.inv);
        for i in 0..3 {
            for j in 0..3 {
                let e = if i == j { 1.0 } else { 0.0 };
                assert!((id[[i, j]] - e).abs() < 1e-14, "{id:?}");
            }
        }
    }

    #[test]
    fn a_collinear_column_is_dropped_in_order() {
        // Columns: x1, x2, x1 + 2 x2, x3.
        let x = array![
            [1.0, 0.0, 1.0, 2.0],
            [1.0, 1.0, 3.0, -1.0],
            [1.0, 2.0, 5.0, 0.5],
            [1.0, 5.0, 11.0, 3.0],
            [1.0, -1.0, -1.0, 1.0]
        ];
        let g = x.t().dot(&x);
        let r = invert_gram(&g);
        assert_eq!(r.kept, vec![0, 1, 3]);
        assert_eq!(r.dropped, vec![2]);
        assert!(r.inv.row(2).iter().all(|v| *v == 0.0));
    }

    /// The root applied through the recorded rotations equals the formed root times B, on a
    /// full-rank matrix and on a singular one (the clamp drops the same eigenvalues).
    #[test]
    fn the_applied_root_equals_the_formed_root() {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for (n, rank) in [(1, 1), (7, 7), (40, 40), (40, 25), (90, 60)] {
            let x = Array2::from_shape_fn((n, rank), |_| next());
            let a = x.dot(&x.t());
            let b = Array2::from_shape_fn((n, 3), |_| next());
            let want = sqrt_pinv(&a).dot(&b);
            let got = sqrt_pinv_apply(&a, &b);
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let err = (&got - &want).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(err <= 1e-11 * scale, "n {n} rank {rank}: {err} of {scale}");
        }
    }

    #[test]
    fn eigen_and_sqrt_pinv() {
        let a = array![[2.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 2.0]];
        let (l, v) = sym_eigen(&a);
        let mut ls: Vec<f64> = l.to_vec();
        ls.sort_by(f64::total_cmp);
        let s2 = 2f64.sqrt();
        for (got, want) in ls.iter().zip([2.0 - s2, 2.0, 2.0 + s2]) {
            assert!((got - want).abs() < 1e-14);
        }
        let recon = v.dot(&Array2::from_diag(&l)).dot(&v.t());
        assert!((&recon - &a).iter().all(|d| d.abs() < 1e-14));
        let s = sqrt_pinv(&a);
        let back = s.dot(&a).dot(&s);
        for i in 0..3 {
            for j in 0..3 {
                let e = if i == j { 1.0 } else { 0.0 };
                assert!((back[[i, j]] - e).abs() < 1e-13);
            }
        }
        // A singular projection: I - 11'/3 has eigenvalues 0, 1, 1, so its pseudo-inverse root is itself.
        let p = Array2::<f64>::eye(3) - Array2::from_elem((3, 3), 1.0 / 3.0);
        let sp = sqrt_pinv(&p);
        assert!((&sp - &p).iter().all(|d| d.abs() < 1e-13));
    }

    #[test]
    fn eigen_reconstructs_larger_and_degenerate_matrices() {
        let n = 9;
        let b = Array2::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let a = b.t().dot(&b);
        // A projection with a repeated eigenvalue 1 and a zero.
        let p = Array2::<f64>::eye(n) - Array2::from_elem((n, n), 1.0 / n as f64);
        for m in [a, p] {
            let (l, v) = sym_eigen(&m);
            let recon = v.dot(&Array2::from_diag(&l)).dot(&v.t());
            let scale = m.iter().fold(0.0f64, |acc, x| acc.max(x.abs()));
            assert!((&recon - &m).iter().all(|d| d.abs() < 1e-12 * scale));
            let orth = v.t().dot(&v) - Array2::<f64>::eye(n);
            assert!(orth.iter().all(|d| d.abs() < 1e-12));
        }
    }

    #[test]
    fn compensated_sum() {
        let v = [1e16, 1.0, -1e16, 1.0];
        assert_eq!(ksum(v), 2.0);
    }
}

/// `A^{+1/2}` for a symmetric PSD `A = I + Y C Y'` (n x n) of low rank update (Y n x k, C k x k
/// symmetric, k much smaller than n), applied to vectors without forming the n x n matrix: with Q
/// an orthonormal basis of Y's columns (modified Gram-Schmidt, twice) and R = Q'Y,
/// `A = (I − QQ') + Q (I + R C R') Q'`, so `A^{+1/2} = (I − QQ') + Q (I + R C R')^{+1/2} Q'`, with
/// the same clamp of eigenvalues as [`sqrt_pinv`] (the other eigenvalues are 1). The cost is
/// O(n k² + k³) instead of O(n³): CR2's adjustment of a large cluster (issue 12).
#[derive(Debug, Clone)]
pub struct LowRankRoot {
    q: Array2<f64>,
    t: Array2<f64>,
}

impl LowRankRoot {
    /// The root of `I + Y C Y'`.
    pub fn new(y: &Array2<f64>, c: &Array2<f64>) -> Self {
        let (n, k) = y.dim();
        let mut basis: Vec<Array1<f64>> = Vec::with_capacity(k);
        for j in 0..k {
            let col = y.column(j);
            let norm0 = col.dot(&col).sqrt();
            if norm0 == 0.0 {
                continue;
            }
            let mut w = col.to_owned();
            for _ in 0..2 {
                for b in &basis {
                    let r = b.dot(&w);
                    w.scaled_add(-r, b);
                }
            }
            let norm = w.dot(&w).sqrt();
            // Only a numerically exact dependence is dropped: an extra direction never changes
            // the result, a missing one would.
            if norm <= 1e-14 * norm0 {
                continue;
            }
            w /= norm;
            basis.push(w);
        }
        let r_count = basis.len();
        let mut q = Array2::<f64>::zeros((n, r_count));
        for (j, b) in basis.iter().enumerate() {
            q.column_mut(j).assign(b);
        }
        let r = q.t().dot(y);
        let mut small = r.dot(c).dot(&r.t());
        for i in 0..r_count {
            small[[i, i]] += 1.0;
        }
        // Symmetrize against rounding before the eigendecomposition.
        let small = Array2::from_shape_fn((r_count, r_count), |(i, j)| {
            0.5 * (small[[i, j]] + small[[j, i]])
        });
        let t = sqrt_pinv(&small);
        LowRankRoot { q, t }
    }

    /// `A^{+1/2} v`.
    pub fn apply(&self, v: &Array1<f64>) -> Array1<f64> {
        let qv = self.q.t().dot(v);
        let mut out = v - &self.q.dot(&qv);
        out += &self.q.dot(&self.t.dot(&qv));
        out
    }
}
