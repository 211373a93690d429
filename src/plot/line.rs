//! A line chart of series over labelled positions: the quarterly sick-leave rate by arm, with the
//! randomization quarter marked.

use std::fmt::Write as _;

use super::{Frame, Scale, Svg, data, escape, open, px, thin, x_axis, y_axis};

/// One line: its name and its points (position, value); a missing quarter is left out, and the
/// line breaks there.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's name (an arm).
    pub name: String,
    /// (position, value), positions in increasing order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// The id its title and description are named by (unique on a page).
    pub id: String,
    /// The title.
    pub title: String,
    /// A sentence saying what it shows.
    pub desc: String,
    /// The x axis's labelled positions, in order (every quarter, say).
    pub x_labels: Vec<(f64, String)>,
    /// The x axis's title.
    pub x_title: String,
    /// The y axis's title.
    pub y_title: String,
    /// The lines.
    pub series: Vec<Series>,
    /// A vertical marker at a position, with its label (the randomization quarter).
    pub mark: Option<(f64, String)>,
}

/// The y ticks asked for.
const Y_TICKS: usize = 5;

/// The most x labels shown.
const X_LABELS: usize = 10;

impl LineChart {
    /// The chart as SVG: a path and a point per value for each series (class `series-k` for the
    /// k-th), the marker, and a legend.
    pub fn render(&self) -> Svg {
        let frame = Frame::DEFAULT;
        let values = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1));
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let (xr0, xr1) = frame.x_range();
        let (yr0, yr1) = frame.y_range();
        let y = Scale::linear(lo, hi, yr0, yr1).nice(Y_TICKS);
        let xs = self.x_labels.iter().map(|l| l.0);
        let (xmin, xmax) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let (xmin, xmax) = if xmin.is_finite() {
            (xmin, xmax)
        } else {
            (0.0, 1.0)
        };
        // Half a step of room at each end.
        let pad = if self.x_labels.len() > 1 {
            (xmax - xmin) / (self.x_labels.len() - 1) as f64 / 2.0
        } else {
            0.5
        };
        let x = Scale::linear(xmin - pad, xmax + pad, xr0, xr1);
        let mut out = String::new();
        open(
            &mut out,
            &frame,
            &self.id,
            "plot-line",
            &self.title,
            &self.desc,
        );
        y_axis(&mut out, &frame, &y, Y_TICKS, &self.y_title);
        x_axis(
            &mut out,
            &frame,
            &x,
            &thin(&self.x_labels, X_LABELS),
            &self.x_title,
        );
        if let Some((at, label)) = &self.mark {
            let _ = write!(
                out,
                "<g class=\"mark\" data-x=\"{}\"><line x1=\"{x}\" x2=\"{x}\" y1=\"{}\" y2=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\">{}</text></g>",
                data(*at),
                px(yr0),
                px(yr1),
                px(x.at(*at) + 4.0),
                px(yr1 + 10.0),
                escape(label),
                x = px(x.at(*at)),
            );
        }
        for (k, s) in self.series.iter().enumerate() {
            let _ = write!(
                out,
                "<g class=\"series series-{k}\" data-name=\"{}\"><path d=\"",
                escape(&s.name)
            );
            // A gap of more than one step breaks the line.
            let step = if pad > 0.0 { 2.0 * pad } else { 1.0 };
            let mut last: Option<f64> = None;
            for &(px_, py_) in &s.points {
                let cmd = match last {
                    Some(prev) if px_ - prev <= step * 1.000001 => 'L',
                    _ => 'M',
                };
                let _ = write!(out, "{cmd}{} {}", px(x.at(px_)), px(y.at(py_)));
                last = Some(px_);
            }
            out.push_str("\"/>");
            for &(vx, vy) in &s.points {
                let _ = write!(
                    out,
                    "<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"2.5\" data-x=\"{}\" \
                     data-y=\"{}\"/>",
                    px(x.at(vx)),
                    px(y.at(vy)),
                    data(vx),
                    data(vy)
                );
            }
            out.push_str("</g>");
        }
        // The legend, top left inside the plot area.
        out.push_str("<g class=\"legend\">");
        for (k, s) in self.series.iter().enumerate() {
            let ly = yr1 + 8.0 + 14.0 * k as f64;
            let _ = write!(
                out,
                "<line class=\"series-{k}\" x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\"/>\
                 <text x=\"{}\" y=\"{ly}\" dy=\"0.32em\">{}</text>",
                px(xr0 + 8.0),
                px(xr0 + 24.0),
                px(xr0 + 28.0),
                escape(&s.name),
                ly = px(ly)
            );
        }
        out.push_str("</g></svg>");
        Svg(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{attrs, numbers};
    use super::*;

    fn chart() -> LineChart {
        LineChart {
            id: "rate".into(),
            title: "Sykefravær per kvartal".into(),
            desc: "Tapte dagsverk i prosent av mulige, per arm".into(),
            x_labels: (0..8)
                .map(|q| (q as f64, format!("2024K{}", q % 4 + 1)))
                .collect(),
            x_title: "Kvartal".into(),
            y_title: "Prosent".into(),
            series: vec![
                Series {
                    name: "kontroll".into(),
                    points: (0..8).map(|q| (q as f64, 6.0 + 0.1 * q as f64)).collect(),
                },
                Series {
                    name: "bred_prosess".into(),
                    points: vec![(0.0, 6.1), (1.0, 6.0), (4.0, 5.2), (5.0, 5.1)],
                },
            ],
            mark: Some((3.5, "Randomisert".into())),
        }
    }

    /// The points drawn read back, through the axes, as the data.
    #[test]
    fn the_points_are_the_data() {
        let c = chart();
        let svg = c.render().into_string();
        let xs = numbers(&svg, "circle class=\"point\"", "data-x");
        let ys = numbers(&svg, "circle class=\"point\"", "data-y");
        let want: Vec<(f64, f64)> = c.series.iter().flat_map(|s| s.points.clone()).collect();
        assert_eq!(xs.len(), want.len());
        for ((x, y), (wx, wy)) in xs.iter().zip(&ys).zip(&want) {
            assert_eq!((*x, *y), (*wx, *wy));
        }
        // Pixel positions agree with the data through the chart's own y scale: higher is more.
        let cy = numbers(&svg, "circle class=\"point\"", "cy");
        let kontroll = &cy[..8];
        assert!(kontroll.windows(2).all(|w| w[1] < w[0]), "{kontroll:?}");
        assert_eq!(
            attrs(&svg, "class=\"series ", "data-name"),
            ["kontroll", "bred_prosess"]
        );
    }

    /// The pixel of each point inverts to its value to within the one-decimal rounding.
    #[test]
    fn pixels_invert_to_values() {
        let c = chart();
        let svg = c.render().into_string();
        let frame = Frame::DEFAULT;
        let (yr0, yr1) = frame.y_range();
        let y = Scale::linear(5.1, 6.7, yr0, yr1).nice(Y_TICKS);
        let cy = numbers(&svg, "circle class=\"point\"", "cy");
        let ys = numbers(&svg, "circle class=\"point\"", "data-y");
        for (p, v) in cy.iter().zip(&ys) {
            assert!((y.invert(*p) - v).abs() < 0.01, "{p} {v}");
        }
    }

    #[test]
    fn a_gap_breaks_the_line_and_the_mark_is_drawn() {
        let svg = chart().render().into_string();
        let paths = attrs(&svg, "path d=", "d");
        assert_eq!(paths[0].matches('M').count(), 1);
        assert_eq!(paths[1].matches('M').count(), 2, "{}", paths[1]);
        assert_eq!(numbers(&svg, "g class=\"mark\"", "data-x"), [3.5]);
        assert!(svg.contains(">Randomisert</text>"));
    }

    #[test]
    fn names_are_escaped_and_the_bytes_are_stable() {
        let mut c = chart();
        c.series[1].name = "<script>alert(1)</script>".into();
        let a = c.render();
        assert!(!a.as_str().contains("<script>"));
        assert!(a.as_str().contains("&lt;script&gt;"));
        assert_eq!(a, c.render());
        assert!(a.as_str().starts_with("<svg ") && a.as_str().ends_with("</svg>"));
        assert!(a.as_str().contains("role=\"img\""));
    }

    #[test]
    fn an_empty_chart_renders() {
        let c = LineChart {
            series: Vec::new(),
            x_labels: Vec::new(),
            mark: None,
            ..chart()
        };
        let svg = c.render().into_string();
        assert!(svg.ends_with("</svg>") && !svg.contains("NaN") && !svg.contains("inf"));
    }
}
