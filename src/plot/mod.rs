//! Plots as SVG for the pages: the quarterly rate by arm ([`line`]), the event study
//! ([`event_study`]) and the CONSORT flow ([`consort`]).
//!
//! A small module of our own rather than a plotting crate: plotters' SVG backend snaps every
//! coordinate to whole pixels (which moves a small confidence interval), writes no `<title>`,
//! `<desc>`, `role` or class hooks, and has nothing for CONSORT boxes; charming renders SVG on the
//! server only through an embedded V8. Here the geometry is a [`Scale`] and a few lines per chart,
//! and the markup is written with every text escaped ([`escape`]).
//!
//! Every chart is `role="img"` with a `<title>` and a `<desc>`, styled by CSS classes (no inline
//! colours), with pixel coordinates at one decimal and each data point's own values in `data-*`
//! attributes, so a test (or a reader's tool) can check the points a plot shows. The same input
//! gives the same bytes.

pub mod consort;
pub mod event_study;
pub mod line;
pub mod scale;

use std::fmt::Write as _;

pub use scale::Scale;

/// SVG markup built by this module (the only markup a page may include unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svg(String);

impl Svg {
    /// The markup.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The markup, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Svg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text escaped for SVG and HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A pixel coordinate at one decimal (no "-0.0").
fn px(v: f64) -> String {
    let s = format!("{v:.1}");
    if s == "-0.0" { "0.0".to_owned() } else { s }
}

/// A data value as written in `data-*` attributes: the shortest form that reads back as the same
/// number.
fn data(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else {
        format!("{v}")
    }
}

/// A tick label with `decimals` decimals, with a Norwegian decimal comma.
fn tick_label(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_owned()
    } else {
        s
    };
    s.replace('.', ",").replace('-', "−")
}

/// The plot area of a chart: its size and margins.
#[derive(Debug, Clone, Copy)]
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

impl Frame {
    const DEFAULT: Frame = Frame {
        width: 640.0,
        height: 320.0,
        left: 56.0,
        right: 16.0,
        top: 16.0,
        bottom: 44.0,
    };

    fn x_range(&self) -> (f64, f64) {
        (self.left, self.width - self.right)
    }

    fn y_range(&self) -> (f64, f64) {
        (self.height - self.bottom, self.top)
    }
}

/// The opening of a chart: `<svg>` with its title and description.
fn open(out: &mut String, frame: &Frame, id: &str, class: &str, title: &str, desc: &str) {
    let id = escape(id);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\" class=\"plot {class}\">\
         <title id=\"{id}-title\">{title}</title><desc id=\"{id}-desc\">{desc}</desc>",
        w = frame.width,
        h = frame.height,
        title = escape(title),
        desc = escape(desc),
    );
}

/// A y axis: grid lines and labels at the scale's ticks, and the axis title.
fn y_axis(out: &mut String, frame: &Frame, y: &Scale, n: usize, label: &str) {
    let (lo, hi) = y.domain();
    let decimals = scale::decimals(scale::nice_step(lo, hi, n));
    let (x0, x1) = frame.x_range();
    out.push_str("<g class=\"axis axis-y\">");
    for t in y.ticks(n) {
        let py = px(y.at(t));
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{py}\" y2=\"{py}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{py}\" text-anchor=\"end\" dy=\"0.32em\">{}</text>",
            px(x0),
            px(x1),
            px(x0 - 6.0),
            tick_label(t, decimals)
        );
    }
    let _ = write!(
        out,
        "<text class=\"axis-title\" transform=\"translate(12 {}) rotate(-90)\" \
         text-anchor=\"middle\">{}</text></g>",
        px((frame.y_range().0 + frame.y_range().1) / 2.0),
        escape(label)
    );
}

/// An x axis of labelled positions (`(value, label)`), and the axis title.
fn x_axis(out: &mut String, frame: &Frame, x: &Scale, ticks: &[(f64, String)], label: &str) {
    let y0 = frame.y_range().0;
    let _ = write!(
        out,
        "<g class=\"axis axis-x\"><line class=\"baseline\" x1=\"{}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"/>",
        px(frame.x_range().0),
        px(frame.x_range().1),
        y = px(y0)
    );
    for (v, text) in ticks {
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(x.at(*v)),
            px(y0 + 16.0),
            escape(text)
        );
    }
    let _ = write!(
        out,
        "<text class=\"axis-title\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
        px((frame.x_range().0 + frame.x_range().1) / 2.0),
        px(frame.height - 6.0),
        escape(label)
    );
}

/// At most `max` of `labels`' positions, evenly spaced, always with the first and the last.
fn thin(labels: &[(f64, String)], max: usize) -> Vec<(f64, String)> {
    if labels.len() <= max || max < 2 {
        return labels.to_vec();
    }
    let every = labels.len().div_ceil(max);
    let last = labels.len() - 1;
    let mut kept: Vec<usize> = (0..labels.len()).step_by(every).collect();
    // The last label is always shown; it takes the place of a kept one closer than a step, so
    // two labels never crowd each other.
    if kept.last() != Some(&last) {
        if kept.last().is_some_and(|&k| last - k < every) && kept.len() > 1 {
            kept.pop();
        }
        kept.push(last);
    }
    kept.into_iter().map(|i| labels[i].clone()).collect()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Reading a plot back: the values of an attribute on the elements of a class.

    /// The value of attribute `attr` of every element whose opening tag contains `marker`.
    pub fn attrs(svg: &str, marker: &str, attr: &str) -> Vec<String> {
        let mut out = Vec::new();
        for piece in svg.split('<').filter(|p| p.contains(marker)) {
            let tag = piece.split('>').next().unwrap_or("");
            let key = format!(" {attr}=\"");
            if let Some(start) = tag.find(&key) {
                let rest = &tag[start + key.len()..];
                if let Some(end) = rest.find('"') {
                    out.push(rest[..end].to_owned());
                }
            }
        }
        out
    }

    /// As [`attrs`], parsed as numbers.
    pub fn numbers(svg: &str, marker: &str, attr: &str) -> Vec<f64> {
        attrs(svg, marker, attr)
            .iter()
            .map(|v| v.parse::<f64>().expect("a number"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">Tom & 'Jerry'</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn numbers_are_written_plainly() {
        assert_eq!(px(-0.04), "0.0");
        assert_eq!(px(12.345), "12.3");
        assert_eq!(data(-0.0), "0");
        assert_eq!(data(0.1), "0.1");
        assert_eq!(tick_label(-0.0, 1), "0,0");
        assert_eq!(tick_label(-0.25, 2), "−0,25");
        assert_eq!(tick_label(6.0, 0), "6");
    }

    #[test]
    fn thinning_keeps_the_ends() {
        let labels: Vec<(f64, String)> = (0..20).map(|i| (i as f64, format!("q{i}"))).collect();
        let kept = thin(&labels, 8);
        assert!(kept.len() <= 8);
        assert_eq!(kept.first().map(|l| l.1.as_str()), Some("q0"));
        assert_eq!(kept.last().map(|l| l.1.as_str()), Some("q19"));
        // No two labels closer than the step (20 labels, at most 8: every third).
        for pair in kept.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= 3.0, "{pair:?}");
        }
        let kept = thin(&labels[..19], 10);
        assert_eq!(
            kept.iter().map(|l| l.0).collect::<Vec<_>>(),
            [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0]
        );
        assert_eq!(thin(&labels[..5], 8).len(), 5);
    }
}
