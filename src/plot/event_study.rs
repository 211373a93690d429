//! The event-study plot: one coefficient per event time with its confidence interval, the
//! reference period at zero, the line where help starts, and the pre-trend test.

use std::fmt::Write as _;

use super::{Frame, Scale, Svg, data, escape, open, px, thin, x_axis, y_axis};

/// One event time's coefficient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficient {
    /// Quarters since randomization.
    pub event_time: i32,
    /// The estimate.
    pub estimate: f64,
    /// The interval's limits.
    pub ci_low: f64,
    /// The interval's upper limit.
    pub ci_high: f64,
}

/// An event-study plot.
#[derive(Debug, Clone, PartialEq)]
pub struct EventStudyPlot {
    /// The id its title and description are named by (unique on a page).
    pub id: String,
    /// The title.
    pub title: String,
    /// The pre-trend test as a sentence (shown under the title and in the description).
    pub pretrend: String,
    /// The confidence level, for the description.
    pub conf_level: f64,
    /// The reference event time (drawn at zero, hollow).
    pub reference: i32,
    /// The coefficients, by event time.
    pub coefficients: Vec<Coefficient>,
    /// The y axis's title.
    pub y_title: String,
}

const Y_TICKS: usize = 5;
const X_LABELS: usize = 12;

impl EventStudyPlot {
    /// The plot as SVG: per coefficient a `<g class="coef">` with the interval's line and the
    /// point, its values in `data-e`, `data-estimate`, `data-low` and `data-high`.
    pub fn render(&self) -> Svg {
        let frame = Frame::DEFAULT;
        let (xr0, xr1) = frame.x_range();
        let (yr0, yr1) = frame.y_range();
        let mut lo: f64 = 0.0;
        let mut hi: f64 = 0.0;
        for c in &self.coefficients {
            for v in [c.ci_low, c.ci_high, c.estimate] {
                if v.is_finite() {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
        }
        let y = Scale::linear(lo, hi, yr0, yr1).nice(Y_TICKS);
        let mut times: Vec<i32> = self.coefficients.iter().map(|c| c.event_time).collect();
        times.push(self.reference);
        times.sort_unstable();
        times.dedup();
        let (emin, emax) = (
            times.first().copied().unwrap_or(-1),
            times.last().copied().unwrap_or(0),
        );
        let x = Scale::linear(f64::from(emin) - 0.5, f64::from(emax) + 0.5, xr0, xr1);
        let desc = format!(
            "{} % konfidensintervall per kvartal før og etter randomisering, referanse e={}. {}",
            fmt_level(self.conf_level),
            self.reference,
            self.pretrend
        );
        let mut out = String::new();
        open(
            &mut out,
            &frame,
            &self.id,
            "plot-event-study",
            &self.title,
            &desc,
        );
        y_axis(&mut out, &frame, &y, Y_TICKS, &self.y_title);
        let labels: Vec<(f64, String)> = times
            .iter()
            .map(|&e| (f64::from(e), format!("{e}")))
            .collect();
        x_axis(
            &mut out,
            &frame,
            &x,
            &thin(&labels, X_LABELS),
            "Kvartaler fra randomisering (event time)",
        );
        let zero = px(y.at(0.0));
        let start = px(x.at(f64::from(self.reference) + 0.5));
        let _ = write!(
            out,
            "<line class=\"zero\" x1=\"{}\" x2=\"{}\" y1=\"{zero}\" y2=\"{zero}\"/>\
             <line class=\"start\" x1=\"{start}\" x2=\"{start}\" y1=\"{}\" y2=\"{}\"/>\
             <text class=\"pretrend\" x=\"{}\" y=\"{}\">{}</text>",
            px(xr0),
            px(xr1),
            px(yr0),
            px(yr1),
            px(xr0 + 8.0),
            px(yr1 + 10.0),
            escape(&self.pretrend)
        );
        for c in &self.coefficients {
            let cx = px(x.at(f64::from(c.event_time)));
            let _ = write!(
                out,
                "<g class=\"coef\" data-e=\"{}\" data-estimate=\"{}\" data-low=\"{}\" \
                 data-high=\"{}\">",
                c.event_time,
                data(c.estimate),
                data(c.ci_low),
                data(c.ci_high)
            );
            if c.ci_low.is_finite() && c.ci_high.is_finite() {
                let _ = write!(
                    out,
                    "<line class=\"ci\" x1=\"{cx}\" x2=\"{cx}\" y1=\"{}\" y2=\"{}\"/>",
                    px(y.at(c.ci_low)),
                    px(y.at(c.ci_high))
                );
            }
            let _ = write!(
                out,
                "<circle class=\"point\" cx=\"{cx}\" cy=\"{}\" r=\"3\"/></g>",
                px(y.at(c.estimate))
            );
        }
        let _ = write!(
            out,
            "<circle class=\"reference\" cx=\"{}\" cy=\"{zero}\" r=\"3\" data-e=\"{}\"/></svg>",
            px(x.at(f64::from(self.reference))),
            self.reference
        );
        Svg(out)
    }
}

/// 0.95 as "95", 0.9 as "90", 0.975 as "97,5".
fn fmt_level(level: f64) -> String {
    crate::estimate::percent(level).replace('.', ",")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::numbers;
    use super::*;

    fn plot() -> EventStudyPlot {
        let coefficients = (-4..=5)
            .filter(|e| *e != -1)
            .map(|e| {
                let est = if e >= 0 {
                    -0.5 - 0.05 * f64::from(e)
                } else {
                    0.02 * f64::from(e)
                };
                Coefficient {
                    event_time: e,
                    estimate: est,
                    ci_low: est - 0.3,
                    ci_high: est + 0.3,
                }
            })
            .collect();
        EventStudyPlot {
            id: "es".into(),
            title: "Event study, bred_prosess mot kontroll".into(),
            pretrend: "Pre-trend: F = 0,41, p = 0,80".into(),
            conf_level: 0.95,
            reference: -1,
            coefficients,
            y_title: "Prosentpoeng".into(),
        }
    }

    /// Every coefficient is drawn with its own values, and its point and interval sit where the
    /// axis puts those values.
    #[test]
    fn the_coefficients_are_the_data() {
        let p = plot();
        let svg = p.render().into_string();
        let es = numbers(&svg, "g class=\"coef\"", "data-e");
        let est = numbers(&svg, "g class=\"coef\"", "data-estimate");
        let lows = numbers(&svg, "g class=\"coef\"", "data-low");
        assert_eq!(es.len(), p.coefficients.len());
        for (k, c) in p.coefficients.iter().enumerate() {
            assert_eq!(es[k], f64::from(c.event_time));
            assert_eq!(est[k], c.estimate);
            assert_eq!(lows[k], c.ci_low);
        }
        let frame = Frame::DEFAULT;
        let (yr0, yr1) = frame.y_range();
        let y = Scale::linear(-1.05, 0.3, yr0, yr1).nice(Y_TICKS);
        let cy = numbers(&svg, "circle class=\"point\"", "cy");
        for (p, v) in cy.iter().zip(&est) {
            assert!((y.invert(*p) - v).abs() < 0.01, "{p} {v}");
        }
        let y1 = numbers(&svg, "line class=\"ci\"", "y1");
        for (p, v) in y1.iter().zip(&lows) {
            assert!((y.invert(*p) - v).abs() < 0.01);
        }
        // The reference period is drawn once, at zero.
        assert_eq!(
            numbers(&svg, "circle class=\"reference\"", "data-e"),
            [-1.0]
        );
        assert!(svg.contains("Pre-trend: F = 0,41, p = 0,80"));
        assert!(svg.contains("95 % konfidensintervall"));
    }

    #[test]
    fn the_level_is_written_in_norwegian() {
        assert_eq!(fmt_level(0.95), "95");
        assert_eq!(fmt_level(0.9), "90");
        assert_eq!(fmt_level(0.975), "97,5");
    }

    #[test]
    fn a_missing_interval_draws_only_the_point() {
        let mut p = plot();
        p.coefficients[0].ci_low = f64::NAN;
        let svg = p.render().into_string();
        assert_eq!(
            numbers(&svg, "line class=\"ci\"", "y1").len(),
            p.coefficients.len() - 1
        );
        // The missing limit shows in its data attribute only, never as a coordinate.
        assert_eq!(svg.matches("NaN").count(), 1);
        assert!(svg.contains("data-low=\"NaN\""));
    }
}
