//! The CONSORT flow: the firms assessed and eligible, then per arm randomized, received help and
//! analysed, as boxes joined by arrows.

use std::fmt::Write as _;

use super::{Svg, escape, open, px};

/// One arm's column of the flow. Counts are text, so that a masked count ("<5") shows as such.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsortArm {
    /// The arm.
    pub name: String,
    /// Firms randomized to it.
    pub randomized: String,
    /// Firms that received help (take-up; "–" for control).
    pub received: String,
    /// Firms in the analysis.
    pub analysed: String,
}

/// A CONSORT flow diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Consort {
    /// The id its title and description are named by.
    pub id: String,
    /// Firms assessed for eligibility.
    pub assessed: String,
    /// Firms eligible.
    pub eligible: String,
    /// The arms, control among them.
    pub arms: Vec<ConsortArm>,
}

const BOX_H: f64 = 44.0;
const GAP: f64 = 28.0;
const COL_W: f64 = 150.0;
const COL_GAP: f64 = 12.0;

impl Consort {
    /// The diagram as SVG: each box a `<g class="box">` with `data-stage`, `data-arm` (arm boxes)
    /// and `data-count`.
    pub fn render(&self) -> Svg {
        let n = self.arms.len().max(1) as f64;
        let width = (n * COL_W + (n - 1.0) * COL_GAP + 32.0).max(360.0);
        let height = 16.0 + 5.0 * BOX_H + 4.0 * GAP + 16.0;
        let frame = super::Frame {
            width,
            height,
            ..super::Frame::DEFAULT
        };
        let desc = format!(
            "{} virksomheter vurdert, {} kvalifisert, fordelt på {} armer",
            self.assessed,
            self.eligible,
            self.arms.len()
        );
        let mut out = String::new();
        open(
            &mut out,
            &frame,
            &self.id,
            "plot-consort",
            "CONSORT-flyt",
            &desc,
        );
        let row = |k: usize| 16.0 + k as f64 * (BOX_H + GAP);
        let wide = (width - 32.0).min(320.0);
        let cx = width / 2.0;
        boxed(
            &mut out,
            cx - wide / 2.0,
            row(0),
            wide,
            "assessed",
            None,
            "Vurdert (assessed)",
            &self.assessed,
        );
        arrow(&mut out, cx, row(0) + BOX_H, cx, row(1));
        boxed(
            &mut out,
            cx - wide / 2.0,
            row(1),
            wide,
            "eligible",
            None,
            "Kvalifisert (eligible)",
            &self.eligible,
        );
        let total = n * COL_W + (n - 1.0) * COL_GAP;
        let left = (width - total) / 2.0;
        for (k, arm) in self.arms.iter().enumerate() {
            let x = left + k as f64 * (COL_W + COL_GAP);
            let mid = x + COL_W / 2.0;
            arrow(&mut out, cx, row(1) + BOX_H, mid, row(2));
            let stages = [
                ("randomized", "Randomisert", &arm.randomized),
                ("received", "Fikk hjelp (received)", &arm.received),
                ("analysed", "Analysert (analysed)", &arm.analysed),
            ];
            for (j, (stage, label, count)) in stages.iter().enumerate() {
                let y = row(2 + j);
                if j > 0 {
                    arrow(&mut out, mid, y - GAP, mid, y);
                }
                let label = if j == 0 {
                    format!("{label}: {}", arm.name)
                } else {
                    (*label).to_owned()
                };
                boxed(&mut out, x, y, COL_W, stage, Some(&arm.name), &label, count);
            }
        }
        out.push_str("</svg>");
        Svg(out)
    }
}

#[allow(clippy::too_many_arguments)]
fn boxed(
    out: &mut String,
    x: f64,
    y: f64,
    w: f64,
    stage: &str,
    arm: Option<&str>,
    label: &str,
    count: &str,
) {
    let arm_attr = arm
        .map(|a| format!(" data-arm=\"{}\"", escape(a)))
        .unwrap_or_default();
    let _ = write!(
        out,
        "<g class=\"box\" data-stage=\"{stage}\"{arm_attr} data-count=\"{c}\">\
         <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{BOX_H}\" rx=\"4\"/>\
         <text class=\"label\" x=\"{tx}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text class=\"count\" x=\"{tx}\" y=\"{}\" text-anchor=\"middle\">{c}</text></g>",
        px(x),
        px(y),
        px(w),
        px(y + 17.0),
        escape(label),
        px(y + 35.0),
        c = escape(count),
        tx = px(x + w / 2.0),
    );
}

fn arrow(out: &mut String, x1: f64, y1: f64, x2: f64, y2: f64) {
    let _ = write!(
        out,
        "<path class=\"arrow\" d=\"M{} {}L{} {}\"/>",
        px(x1),
        px(y1),
        px(x2),
        px(y2)
    );
}

#[cfg(test)]
mod tests {
    use super::super::test_support::attrs;
    use super::*;

    fn flow() -> Consort {
        Consort {
            id: "consort".into(),
            assessed: "20000".into(),
            eligible: "7012".into(),
            arms: ["kontroll", "bred_prosess", "ledere"]
                .iter()
                .enumerate()
                .map(|(k, a)| ConsortArm {
                    name: (*a).into(),
                    randomized: format!("{}", 1700 + k),
                    received: if k == 0 { "–".into() } else { "<5".into() },
                    analysed: format!("{}", 1690 + k),
                })
                .collect(),
        }
    }

    /// Every stage of every arm is a box with its count; masked counts stay masked.
    #[test]
    fn every_box_carries_its_count() {
        let c = flow();
        let svg = c.render().into_string();
        let stages = attrs(&svg, "g class=\"box\"", "data-stage");
        let counts = attrs(&svg, "g class=\"box\"", "data-count");
        assert_eq!(stages.len(), 2 + 3 * c.arms.len());
        assert_eq!(
            (stages[0].as_str(), counts[0].as_str()),
            ("assessed", "20000")
        );
        assert_eq!(
            (stages[1].as_str(), counts[1].as_str()),
            ("eligible", "7012")
        );
        for (k, arm) in c.arms.iter().enumerate() {
            let base = 2 + 3 * k;
            assert_eq!(counts[base], arm.randomized);
            assert_eq!(counts[base + 2], arm.analysed);
        }
        assert_eq!(counts[6], "&lt;5");
        assert_eq!(
            attrs(&svg, "g class=\"box\"", "data-arm").len(),
            3 * c.arms.len()
        );
        // Eligible to each arm, and down each arm's column.
        assert_eq!(svg.matches("class=\"arrow\"").count(), 1 + 3 * c.arms.len());
    }

    #[test]
    fn many_arms_widen_the_diagram() {
        let mut c = flow();
        let narrow = c.render().into_string();
        c.arms.extend(c.arms.clone());
        let wide = c.render().into_string();
        let width = |s: &str| {
            s.split("viewBox=\"0 0 ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|w| w.parse::<f64>().ok())
                .expect("width")
        };
        assert!(width(&wide) > width(&narrow));
    }
}
