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
            if d > 0.0 && d.is_finite() { 1.0 / d.sqrt() } else { 0.0 }
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

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix by cyclic Jacobi rotations.
pub fn sym_eigen(a: &Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut m = a.clone();
    let mut v = Array2::<f64>::eye(n);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[[i, j]] * m[[i, j]])
            .sum();
        let diag: f64 = (0..n).map(|i| m[[i, i]] * m[[i, i]]).sum();
        if off <= f64::EPSILON * f64::EPSILON * diag.max(f64::MIN_POSITIVE) || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[[p, q]];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[[q, q]] - m[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let mkp = m[[k, p]];
                    let mkq = m[[k, q]];
                    m[[k, p]] = c * mkp - s * mkq;
                    m[[k, q]] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let mpk = m[[p, k]];
                    let mqk = m[[q, k]];
                    m[[p, k]] = c * mpk - s * mqk;
                    m[[q, k]] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let vkp = v[[k, p]];
                    let vkq = v[[k, q]];
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    (Array1::from_iter((0..n).map(|i| m[[i, i]])), v)
}

/// The symmetric square root of the Moore-Penrose inverse of a symmetric PSD matrix.
pub fn sqrt_pinv(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let (lambda, v) = sym_eigen(a);
    let mut out = Array2::zeros((n, n));
    for k in 0..n {
        if lambda[k] <= EIGEN_CLAMP {
            continue;
        }
        let f = 1.0 / lambda[k].sqrt();
        for i in 0..n {
            let vi = v[[i, k]] * f;
            for j in 0..n {
                out[[i, j]] += vi * v[[j, k]];
            }
        }
    }
    out
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
    fn compensated_sum() {
        let v = [1e16, 1.0, -1e16, 1.0];
        assert_eq!(ksum(v), 2.0);
    }
}
