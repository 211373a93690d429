//! A linear map from data to pixels, and "nice" ticks (1, 2 or 5 times a power of ten).

/// A linear map of the data interval `[d0, d1]` onto the pixel interval `[r0, r1]` (r1 < r0 for a
/// y axis, whose pixels grow downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Scale {
    /// The map of `[d0, d1]` onto `[r0, r1]`. An empty data interval is widened by one unit (or by
    /// 10 % of its value) on each side, so that a constant series still has an axis; a limit that
    /// is not a number gives `[0, 1]`.
    pub fn linear(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        let (d0, d1) = if d0.is_finite() && d1.is_finite() {
            (d0, d1)
        } else {
            (0.0, 1.0)
        };
        let (mut d0, mut d1) = if d0 <= d1 { (d0, d1) } else { (d1, d0) };
        if d1 == d0 {
            let pad = if d0 == 0.0 { 1.0 } else { 0.1 * d0.abs() };
            d0 -= pad;
            d1 += pad;
        }
        Scale { d0, d1, r0, r1 }
    }

    /// The same map with its data interval widened to the nearest ticks of [`nice_step`] for about
    /// `n` ticks.
    pub fn nice(self, n: usize) -> Scale {
        let step = nice_step(self.d0, self.d1, n);
        Scale {
            d0: (self.d0 / step).floor() * step,
            d1: (self.d1 / step).ceil() * step,
            ..self
        }
    }

    /// The pixel of a data value.
    pub fn at(&self, v: f64) -> f64 {
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }

    /// The data value of a pixel (the inverse of [`Scale::at`]).
    pub fn invert(&self, px: f64) -> f64 {
        self.d0 + (px - self.r0) / (self.r1 - self.r0) * (self.d1 - self.d0)
    }

    /// The data interval.
    pub fn domain(&self) -> (f64, f64) {
        (self.d0, self.d1)
    }

    /// Ticks at multiples of the nice step for about `n` ticks, within the data interval.
    pub fn ticks(&self, n: usize) -> Vec<f64> {
        let step = nice_step(self.d0, self.d1, n);
        let first = (self.d0 / step - 1e-9).ceil() as i64;
        let last = (self.d1 / step + 1e-9).floor() as i64;
        (first..=last)
            .map(|k| {
                let t = k as f64 * step;
                // No "-0".
                if t == 0.0 { 0.0 } else { t }
            })
            .collect()
    }
}

/// A step of 1, 2 or 5 times a power of ten that cuts `[lo, hi]` into about `n` parts.
pub fn nice_step(lo: f64, hi: f64, n: usize) -> f64 {
    let span = (hi - lo).abs();
    if span == 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The number of decimals that shows every tick of `step` exactly (0 for 1, 1 for 0.5, 2 for
/// 0.05 …).
pub fn decimals(step: f64) -> usize {
    if step <= 0.0 || !step.is_finite() {
        return 0;
    }
    let d = -(step.log10().floor());
    if d <= 0.0 { 0 } else { d as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(0.0, 10.0, 5), 2.0);
        assert_eq!(nice_step(0.0, 1.0, 5), 0.2);
        assert_eq!(nice_step(-0.05, 0.05, 5), 0.02);
        assert_eq!(nice_step(0.0, 70.0, 5), 10.0);
        assert_eq!(nice_step(0.0, 23.0, 5), 5.0);
        assert_eq!(nice_step(3.0, 3.0, 5), 1.0);
    }

    #[test]
    fn a_scale_maps_and_inverts() {
        let y = Scale::linear(2.0, 8.0, 260.0, 20.0);
        assert_eq!(y.at(2.0), 260.0);
        assert_eq!(y.at(8.0), 20.0);
        assert_eq!(y.at(5.0), 140.0);
        for v in [2.0, 3.3, 7.9] {
            assert!((y.invert(y.at(v)) - v).abs() < 1e-12);
        }
    }

    #[test]
    fn nice_widens_to_ticks_and_ticks_stay_inside() {
        let y = Scale::linear(4.3, 7.9, 260.0, 20.0).nice(5);
        assert_eq!(y.domain(), (4.0, 8.0));
        assert_eq!(y.ticks(5), vec![4.0, 5.0, 6.0, 7.0, 8.0]);
        let z = Scale::linear(-0.31, 0.12, 0.0, 1.0).nice(5);
        let ticks = z.ticks(5);
        assert_eq!(ticks.first().copied(), Some(-0.4));
        assert!(ticks.contains(&0.0) && !ticks.iter().any(|t| t.to_bits() == (-0.0f64).to_bits()));
    }

    #[test]
    fn a_constant_series_still_has_an_axis() {
        let y = Scale::linear(5.0, 5.0, 100.0, 0.0);
        assert!(y.at(5.0) > 0.0 && y.at(5.0) < 100.0);
        let z = Scale::linear(0.0, 0.0, 100.0, 0.0);
        assert_eq!(z.domain(), (-1.0, 1.0));
        assert_eq!(Scale::linear(f64::NAN, 2.0, 0.0, 1.0).domain(), (0.0, 1.0));
    }

    #[test]
    fn decimals_show_the_step() {
        assert_eq!(decimals(1.0), 0);
        assert_eq!(decimals(10.0), 0);
        assert_eq!(decimals(0.5), 1);
        assert_eq!(decimals(0.2), 1);
        assert_eq!(decimals(0.05), 2);
    }
}
