//! Compensated sums, means and sample SDs.

/// `Some(x)` if `x` is finite.
pub(super) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Neumaier's compensated sum (Kahan-Babuška): error bounded independently of the length.
pub(super) fn sum(xs: impl IntoIterator<Item = f64>) -> f64 {
    let mut total = 0.0_f64;
    let mut compensation = 0.0_f64;
    for x in xs {
        let t = total + x;
        if total.abs() >= x.abs() {
            compensation += (total - t) + x;
        } else {
            compensation += (x - t) + total;
        }
        total = t;
    }
    total + compensation
}

/// Mean of finite values, refined by one pass over the deviations; `None` if empty or overflowing.
pub(super) fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let first = sum(xs.iter().copied()) / n;
    finite(first + sum(xs.iter().map(|x| x - first)) / n)
}

/// A sample's mean and SD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Moments {
    /// `None` if there are no values.
    pub(super) mean: Option<f64>,
    /// Divisor `n - 1`; `None` if there are fewer than 2 values.
    pub(super) sd: Option<f64>,
}

/// Mean and sample SD by the corrected two-pass formula
/// `s² = (Σ(x-x̄)² - (Σ(x-x̄))²/n) / (n-1)` (Chan, Golub & LeVeque 1983, eq. 1.7).
pub(super) fn moments(xs: &[f64]) -> Moments {
    let mean = mean(xs);
    let sd = mean.filter(|_| xs.len() >= 2).and_then(|m| {
        let n = xs.len() as f64;
        let squares = sum(xs.iter().map(|x| (x - m) * (x - m)));
        let deviations = sum(xs.iter().map(|x| x - m));
        let variance = (squares - deviations * deviations / n) / (n - 1.0);
        finite(variance.max(0.0).sqrt())
    });
    Moments { mean, sd }
}
