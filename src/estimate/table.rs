//! A results table a researcher can read: one line per arm, estimator and weighting, with the
//! effect in percentage points, its confidence interval, p-values and the effect relative to the
//! control mean; then the pre-trend tests, attrition and anything that could not be estimated.

use std::fmt::Write as _;

use super::Report;

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".into()
    }
}

fn p(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v < 0.0001 {
        "<0.0001".into()
    } else {
        format!("{v:.4}")
    }
}

/// Formats a report as plain text.
pub fn format_table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<12} {:<9} {:<5} {:>9} {:>8} {:>21} {:>8} {:>8} {:>8} {:>7} {:>9}",
        "arm",
        "estimator",
        "weights",
        "se",
        "effect",
        "se",
        "95 % CI",
        "p",
        "p_holm",
        "rel %",
        "df",
        "n"
    );
    for e in report
        .estimates
        .iter()
        .filter(|e| e.term == "z" || e.term == "d")
    {
        let ci = format!("[{}, {}]", num(e.ci_low, 3), num(e.ci_high, 3));
        let _ = writeln!(
            out,
            "{:<14} {:<12} {:<9} {:<5} {:>9} {:>8} {:>21} {:>8} {:>8} {:>8} {:>7} {:>9}{}",
            e.arm,
            e.estimator,
            e.weights,
            e.se_type,
            num(e.estimate, 3),
            num(e.std_error, 3),
            ci,
            p(e.p_value),
            e.p_holm.map_or("".into(), p),
            num(e.relative_effect, 1),
            num(e.df, 1),
            e.n_obs,
            if e.confirmatory { "  *" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "effect: percentage points of sick leave (post-period rate), arm minus control; \
         rel %: relative to the control mean; * confirmatory (Holm within weighting)"
    );
    let es: Vec<_> = report
        .estimates
        .iter()
        .filter(|e| e.estimator == "event_study")
        .collect();
    if !es.is_empty() {
        let _ = writeln!(
            out,
            "\nevent study (CR1), effect by quarter relative to randomization:"
        );
        let mut key = (String::new(), String::new());
        for e in es {
            if (e.arm.clone(), e.weights.clone()) != key {
                key = (e.arm.clone(), e.weights.clone());
                let _ = write!(out, "\n  {:<14} {:<9}", e.arm, e.weights);
            }
            let _ = write!(
                out,
                " {}:{}",
                e.term.trim_start_matches("e="),
                num(e.estimate, 2)
            );
        }
        let _ = writeln!(out);
    }
    if !report.tests.is_empty() {
        let _ = writeln!(out, "\npre-trend tests (joint Wald, CR1):");
        for t in &report.tests {
            let _ = writeln!(
                out,
                "  {:<14} {:<9} F({}, {}) = {}  p = {}",
                t.arm,
                t.weights,
                t.df_num,
                t.df_den,
                num(t.statistic, 3),
                p(t.p_value)
            );
        }
    }
    let _ = writeln!(out, "\nattrition (firms without post-period data):");
    for a in &report.attrition {
        let _ = writeln!(
            out,
            "  {:<14} assigned {:>7}  with data {:>7}  without {:>5}  no baseline {:>5}",
            a.arm, a.assigned, a.with_post_data, a.no_post_data, a.no_pre_data
        );
    }
    if !report.skipped.is_empty() {
        let _ = writeln!(out, "\nnot estimated:");
        for s in &report.skipped {
            let _ = writeln!(
                out,
                "  {:<14} {:<12} {:<9} {}{}",
                s.arm,
                s.estimator,
                s.weights,
                s.se_type
                    .as_deref()
                    .map_or(String::new(), |t| format!("{t}: ")),
                s.error
            );
        }
    }
    out
}
