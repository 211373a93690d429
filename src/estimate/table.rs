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

/// The header and the row layout of the main table: `se_type` names the variance, `se` is its
/// value; `n_firms` counts the firms used and `n_obs` the rows (firms for the ITT estimators,
/// firm-quarters for the panel).
const MAIN: [(&str, usize, bool); 13] = [
    ("arm", 14, false),
    ("estimator", 12, false),
    ("weights", 9, false),
    ("se_type", 16, false),
    ("effect", 9, true),
    ("se", 8, true),
    (CI_COLUMN, 21, true),
    ("p", 8, true),
    ("p_holm", 8, true),
    ("rel %", 8, true),
    ("df", 7, true),
    ("n_firms", 8, true),
    ("n_obs", 9, true),
];

/// The event study's layout: one line per coefficient.
const EVENT: [(&str, usize, bool); 7] = [
    ("arm", 14, false),
    ("weights", 9, false),
    ("e", 4, true),
    ("effect", 9, true),
    ("se", 8, true),
    (CI_COLUMN, 21, true),
    ("p", 8, true),
];

/// The interval column's name in the layouts; [`header`] writes it with the report's level.
const CI_COLUMN: &str = "CI";

/// One line of `cells` laid out by `layout` (name, width, right-aligned), indented by `indent`.
fn line(out: &mut String, indent: &str, layout: &[(&str, usize, bool)], cells: &[String]) {
    out.push_str(indent);
    for (k, ((_, width, right), cell)) in layout.iter().zip(cells).enumerate() {
        if k > 0 {
            out.push(' ');
        }
        if *right {
            let _ = write!(out, "{cell:>width$}");
        } else {
            let _ = write!(out, "{cell:<width$}");
        }
    }
}

/// The header line, the interval column named by its level (`95 % CI`, `90 % CI`).
fn header(out: &mut String, indent: &str, layout: &[(&str, usize, bool)], level: f64) {
    let names: Vec<String> = layout
        .iter()
        .map(|(n, _, _)| {
            if *n == CI_COLUMN {
                format!("{} % CI", percent(level))
            } else {
                (*n).to_owned()
            }
        })
        .collect();
    line(out, indent, layout, &names);
    out.truncate(out.trim_end().len());
    out.push('\n');
}

fn ci(low: f64, high: f64, decimals: usize) -> String {
    format!("[{}, {}]", num(low, decimals), num(high, decimals))
}

/// A confidence level in percent: 95, 90, 97.5 (the table, the report page and the plots).
pub fn percent(level: f64) -> String {
    let pct = level * 100.0;
    if (pct - pct.round()).abs() < 1e-9 {
        format!("{}", pct.round() as i64)
    } else {
        format!("{pct:.1}")
    }
}

/// Formats a report as plain text.
pub fn format_table(report: &Report) -> String {
    let mut out = String::new();
    // Every interval of a report has the one level the analysis asked for.
    let level = report.estimates.first().map_or(0.95, |e| e.conf_level);
    header(&mut out, "", &MAIN, level);
    for e in report
        .estimates
        .iter()
        .filter(|e| e.term == "z" || e.term == "d")
    {
        let cells = [
            e.arm.clone(),
            e.estimator.clone(),
            e.weights.clone(),
            e.se_type.clone(),
            num(e.estimate, 3),
            num(e.std_error, 3),
            ci(e.ci_low, e.ci_high, 3),
            p(e.p_value),
            e.p_holm.map_or(String::new(), p),
            num(e.relative_effect, 1),
            num(e.df, 1),
            e.n_units.to_string(),
            e.n_obs.to_string(),
        ];
        line(&mut out, "", &MAIN, &cells);
        if e.confirmatory {
            out.push_str("  *");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "effect: percentage points of sick leave (post-period rate), arm minus control; \
         se: its standard error, of type se_type; rel %: relative to the control mean\n\
         n_firms: firms used; n_obs: rows used (firms for itt_*, firm-quarters for did_twfe); \
         * confirmatory (Holm within weighting)"
    );
    // Under dagsverk weighting, how concentrated each arm's weight is (once per arm).
    let mut seen = std::collections::BTreeSet::new();
    for e in &report.estimates {
        if let Some(w) = &e.weight_summary
            && seen.insert(e.arm.clone())
        {
            if seen.len() == 1 {
                let _ = writeln!(
                    out,
                    "dagsverk weights: effective firms (Kish, (Σm)²/Σm²) and the largest firm's share of the weight, arm / control:"
                );
            }
            let _ = writeln!(
                out,
                "  {:<14} effective firms {} / {}  largest share {} / {}",
                e.arm,
                num(w.effective_n_treated, 1),
                num(w.effective_n_control, 1),
                num(w.max_weight_share_treated, 3),
                num(w.max_weight_share_control, 3)
            );
        }
    }
    let es: Vec<_> = report
        .estimates
        .iter()
        .filter(|e| e.estimator == "event_study" && e.se_type == "CR1")
        .collect();
    if !es.is_empty() {
        let _ = writeln!(
            out,
            "\nevent study (CR1), effect by quarter e relative to randomization (reference e = -1), \
             with its standard error and confidence interval:"
        );
        header(&mut out, "  ", &EVENT, level);
        for e in es {
            let time = e.event_time.map_or_else(
                || e.term.trim_start_matches("e=").to_owned(),
                |t| t.to_string(),
            );
            let cells = [
                e.arm.clone(),
                e.weights.clone(),
                time,
                num(e.estimate, 3),
                num(e.std_error, 3),
                ci(e.ci_low, e.ci_high, 3),
                p(e.p_value),
            ];
            line(&mut out, "  ", &EVENT, &cells);
            out.push('\n');
        }
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
    if !report.iv.is_empty() {
        let _ = writeln!(
            out,
            "\ncomplier effect (cace_iv: received assistance instrumented by assignment), with the \
             Anderson-Rubin set, robust to a weak first stage:"
        );
        for d in &report.iv {
            let term = if d.model == "did" {
                "received_x_post"
            } else {
                "received"
            };
            let wald = report.estimates.iter().find(|e| {
                e.estimator == d.estimator
                    && e.term == term
                    && e.se_type == d.se_type
                    && e.arm == d.arm
                    && e.weights == d.weights
            });
            let _ = writeln!(
                out,
                "  {:<14} {:<9} {:<6} {:<4} effect {} se {} {} % CI {}  AR {}  first-stage F {}  take-up {} vs {} (by {})",
                d.arm,
                d.weights,
                d.model,
                d.se_type,
                wald.map_or("-".into(), |e| num(e.estimate, 3)),
                wald.map_or("-".into(), |e| num(e.std_error, 3)),
                percent(d.anderson_rubin.conf_level),
                wald.map_or("-".into(), |e| ci(e.ci_low, e.ci_high, 3)),
                d.anderson_rubin.describe(),
                num(d.first_stage_f, 1),
                num(d.takeup_treated, 3),
                num(d.takeup_control, 3),
                d.cutoff
            );
        }
    }
    if let Some(first) = report.ri.first() {
        let method = match &first.result.method {
            super::RiMethod::Exact { .. } => "every assignment".to_owned(),
            super::RiMethod::MonteCarlo { draws, seed } => {
                format!("{draws} Monte Carlo draws, seed {seed:?}")
            }
        };
        let _ = writeln!(
            out,
            "\nrandomization inference ({}; {method}); interval by inversion under a constant effect:",
            first.procedure
        );
        for r in &report.ri {
            let res = &r.result;
            let interval = res.interval.as_ref().map_or(String::new(), |i| {
                let end = |v: Option<f64>, inf: &str| v.map_or(inf.to_owned(), |v| num(v, 3));
                format!(
                    "  {} % set [{}, {}]{}",
                    percent(i.conf_level),
                    end(i.low, "-inf"),
                    end(i.high, "inf"),
                    if i.connected {
                        ""
                    } else {
                        " (not one interval)"
                    }
                )
            });
            let mc = if res.mc_std_error > 0.0 {
                format!(" ± {}", num(res.mc_std_error, 4))
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {:<14} {:<9} {:<9} observed {:>9}  p {}{mc}  ({} of {} draws){interval}",
                r.arm,
                r.weights,
                res.statistic.name(),
                num(res.observed, 3),
                p(res.p_value),
                res.n_extreme,
                res.n_draws,
            );
        }
    }
    if !report.bounds.is_empty() {
        let _ = writeln!(
            out,
            "\nattrition bounds of itt_dim: Lee (trimming, pooled, with the Imbens-Manski interval) \
             and Manski (missing rates at 0 or 100):"
        );
        for b in &report.bounds {
            let lee = b.lee.as_ref().map_or("Lee -".to_owned(), |l| {
                format!(
                    "Lee [{}, {}] (trims {:?} by {}) IM {} % [{}, {}]",
                    num(l.lower, 3),
                    num(l.upper, 3),
                    l.trimmed_arm,
                    num(l.q, 3),
                    percent(l.conf_level),
                    num(l.im_ci_low, 3),
                    num(l.im_ci_high, 3)
                )
            });
            let _ = writeln!(
                out,
                "  {:<14} observed {}/{} vs {}/{}  {lee}  Manski [{}, {}]",
                b.arm,
                b.observed_treated,
                b.n_treated,
                b.observed_control,
                b.n_control,
                num(b.manski.lower, 2),
                num(b.manski.upper, 2)
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::estimate::Estimate;

    fn row(estimator: &str, term: &str, se_type: &str, n_units: usize, n_obs: usize) -> Estimate {
        Estimate {
            estimator: estimator.into(),
            outcome: "sykefravar_prosent".into(),
            arm: "bred_prosess".into(),
            versus: "kontroll".into(),
            weights: "firm".into(),
            term: term.into(),
            event_time: term.strip_prefix("e=").and_then(|t| t.parse().ok()),
            estimate: -0.8631,
            std_error: 0.1547,
            df: 67.0,
            statistic: -5.58,
            p_value: 0.0123,
            p_holm: None,
            ci_low: -1.1719,
            ci_high: -0.5544,
            conf_level: 0.95,
            control_mean: 6.0,
            relative_effect: -14.4,
            n_units,
            n_clusters: None,
            n_obs,
            se_type: se_type.into(),
            ssc_factor: None,
            design: "Blocked".into(),
            dropped: BTreeMap::new(),
            vintage: Some(1),
            protocol_hash: None,
            confirmatory: false,
            weight_summary: None,
        }
    }

    fn report() -> Report {
        Report {
            estimates: vec![
                row("itt_dim", "z", "Neyman", 68, 68),
                row("did_twfe", "d", "CR1", 68, 544),
                row("event_study", "e=-4", "CR1", 68, 544),
                row("event_study", "e=2", "CR1", 68, 544),
            ],
            tests: Vec::new(),
            skipped: Vec::new(),
            attrition: Vec::new(),
            iv: Vec::new(),
            ri: Vec::new(),
            bounds: Vec::new(),
        }
    }

    #[test]
    fn the_header_names_each_column_once_and_says_what_n_counts() {
        let table = format_table(&report());
        let header: Vec<&str> = table.lines().next().expect("header").split("  ").collect();
        let names: Vec<&str> = header
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .collect();
        assert_eq!(
            names,
            [
                "arm",
                "estimator",
                "weights",
                "se_type",
                "effect",
                "se",
                "95 % CI",
                "p",
                "p_holm",
                "rel %",
                "df",
                "n_firms",
                "n_obs"
            ],
            "{table}"
        );
        // The DiD row: 68 firms and 544 firm-quarters, each under its own header.
        let did = table
            .lines()
            .find(|l| l.contains("did_twfe"))
            .expect("did row");
        let cells: Vec<&str> = did.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 2..], ["68", "544"], "{did}");
        let itt = table
            .lines()
            .find(|l| l.contains("itt_dim"))
            .expect("itt row");
        let cells: Vec<&str> = itt.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 2..], ["68", "68"], "{itt}");
        assert!(table.contains("n_obs: rows used (firms for itt_*, firm-quarters for did_twfe)"));
    }

    /// A protocol with alpha 0.10 gets 90 % intervals, and the header says so.
    #[test]
    fn the_interval_column_names_the_level() {
        let mut r = report();
        for e in &mut r.estimates {
            e.conf_level = 0.9;
        }
        let table = format_table(&r);
        assert!(table.lines().next().expect("header").contains("90 % CI"));
        assert!(!table.contains("95 % CI"), "{table}");
        assert_eq!(percent(0.975), "97.5");
        assert_eq!(percent(0.95), "95");
    }

    #[test]
    fn the_event_study_shows_standard_errors_and_intervals() {
        let table = format_table(&report());
        let at = table.find("event study").expect("event study section");
        let section = &table[at..];
        let mut lines = section.lines().skip(1);
        let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
        assert_eq!(
            header,
            ["arm", "weights", "e", "effect", "se", "95", "%", "CI", "p"]
        );
        let rows: Vec<Vec<&str>> = lines
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [
                [
                    "bred_prosess",
                    "firm",
                    "-4",
                    "-0.863",
                    "0.155",
                    "[-1.172,",
                    "-0.554]",
                    "0.0123"
                ],
                [
                    "bred_prosess",
                    "firm",
                    "2",
                    "-0.863",
                    "0.155",
                    "[-1.172,",
                    "-0.554]",
                    "0.0123"
                ]
            ]
        );
    }
}
