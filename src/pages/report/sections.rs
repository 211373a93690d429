//! The report's sections, one function each.

use askama::Template;
use serde_json::Value;

use super::{ReportData, Section};
use crate::plot::event_study::{Coefficient, EventStudyPlot};
use crate::storage::jobs::JobState;

/// A section from a template (the only way to make one, so a section's markup is always escaped
/// template output); a template that fails to render leaves the section out, and says so in the log.
fn section<T: Template>(id: &'static str, title: &str, t: &T) -> Option<Section> {
    match t.render() {
        Ok(html) => Some(Section {
            id,
            title: title.to_owned(),
            html: super::Rendered(html),
        }),
        Err(e) => {
            tracing::error!(section = id, error = %e, "a report section failed to render");
            None
        }
    }
}

/// A number as the report writes it: `decimals` decimals and a decimal comma; text (a masked
/// count) as it is; nothing as "–".
fn num(v: &Value, decimals: usize) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or_else(
            || "–".to_owned(),
            |x| {
                format!("{x:.decimals$}")
                    .replace('.', ",")
                    .replace('-', "−")
            },
        ),
        Value::String(s) => s.clone(),
        _ => "–".to_owned(),
    }
}

/// A p-value: four decimals, or "< 0,0001".
fn pval(v: &Value) -> String {
    match v.as_f64() {
        Some(p) if p < 1e-4 => "< 0,0001".to_owned(),
        Some(_) => num(v, 4),
        None => "–".to_owned(),
    }
}

/// The one confidence level of a result's estimates.
fn conf_level(estimates: &[Value]) -> f64 {
    estimates
        .first()
        .and_then(|e| e["conf_level"].as_f64())
        .unwrap_or(0.95)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

struct RunFacts {
    id: i64,
    vintage: String,
    sha: String,
    program: String,
}

#[derive(Template)]
#[template(path = "pages/report/protocol.html")]
struct ProtocolSection {
    id: String,
    version: u32,
    hash: String,
    state: String,
    arms: String,
    run: Option<RunFacts>,
}

/// The protocol and its hash, and the run shown: its vintage and result hash.
pub fn protocol(d: &ReportData) -> Option<Section> {
    let arms: Vec<String> = d.trial.protocol.arms.iter().map(|a| a.id.clone()).collect();
    section(
        "protokoll",
        "Protokoll og data",
        &ProtocolSection {
            id: d.trial.id.clone(),
            version: d.trial.version,
            hash: d.trial.content_hash.clone(),
            state: d.trial.state.as_str().to_owned(),
            arms: arms.join(", "),
            run: d.done.as_ref().map(|r| RunFacts {
                id: r.id,
                vintage: r.vintage.map_or_else(|| "–".to_owned(), |v| v.to_string()),
                sha: r.result_sha256.clone().unwrap_or_default(),
                program: r.program_version.clone(),
            }),
        },
    )
}

#[derive(Template)]
#[template(path = "pages/report/progress.html")]
struct ProgressSection {
    run: i64,
    state: &'static str,
    state_label: &'static str,
    stage: Option<String>,
    done: u64,
    total: u64,
}

/// The newest run while it computes: its job's stage and progress.
pub fn progress(d: &ReportData) -> Option<Section> {
    let run = d.pending.as_ref()?;
    let job = run.job.as_ref();
    let state = job.map_or(JobState::Queued, |j| j.state);
    section(
        "fremdrift",
        "Analyse som pågår",
        &ProgressSection {
            run: run.id,
            state: state.as_str(),
            state_label: if state == JobState::Running {
                "i gang"
            } else {
                "i kø"
            },
            stage: job.and_then(|j| j.progress.stage.clone()),
            done: job.map_or(0, |j| j.progress.done),
            total: job.map_or(0, |j| j.progress.total),
        },
    )
}

struct EstimateRow {
    arm: String,
    estimator: String,
    weights: String,
    se_type: String,
    estimate: String,
    estimate_raw: String,
    ci: String,
    p: String,
    p_holm: String,
    relative: String,
    n: String,
    confirmatory: bool,
}

/// A `cace_iv` row: the 2SLS estimate beside its first stage, take-up and Anderson-Rubin set.
struct ComplierRow {
    arm: String,
    weights: String,
    model: String,
    se_type: String,
    estimate: String,
    ci: String,
    ar: String,
    ar_shape: String,
    first_stage_f: String,
    takeup: String,
}

/// A randomization-inference row.
struct RiRow {
    arm: String,
    weights: String,
    statistic: String,
    observed: String,
    p: String,
    p_raw: String,
    method: String,
    interval: String,
}

/// An attrition-bounds row.
struct BoundsRow {
    arm: String,
    observed: String,
    lee: String,
    im: String,
    manski: String,
}

#[derive(Template)]
#[template(path = "pages/report/estimates.html")]
struct EstimatesSection {
    level: String,
    rows: Vec<EstimateRow>,
    complier: Vec<ComplierRow>,
    ri: Vec<RiRow>,
    bounds: Vec<BoundsRow>,
    skipped: Vec<String>,
}

/// An interval end point that may be infinite (`None` in the JSON).
fn end(v: &Value, infinite: &str) -> String {
    if v.is_null() {
        infinite.to_owned()
    } else {
        num(v, 3)
    }
}

/// An Anderson-Rubin set as text.
fn ar_text(ar: &Value) -> String {
    let (lo, hi) = (&ar["low"], &ar["high"]);
    match ar["shape"].as_str() {
        Some("bounded") => format!("[{}; {}]", num(lo, 3), num(hi, 3)),
        Some("two_rays") => format!("(−∞; {}] ∪ [{}; ∞)", num(lo, 3), num(hi, 3)),
        Some("ray_above") => format!("[{}; ∞)", num(lo, 3)),
        Some("ray_below") => format!("(−∞; {}]", num(hi, 3)),
        Some("whole_line") => "(−∞; ∞)".to_owned(),
        Some("empty") => "tom".to_owned(),
        _ => "–".to_owned(),
    }
}

fn complier_rows(result: &Value, all: &[Value]) -> Vec<ComplierRow> {
    let Some(iv) = result["iv"].as_array() else {
        return Vec::new();
    };
    iv.iter()
        .map(|d| {
            let term = if d["model"] == "did" {
                "received_x_post"
            } else {
                "received"
            };
            let wald = all.iter().find(|e| {
                e["estimator"] == "cace_iv"
                    && e["term"] == term
                    && e["arm"] == d["arm"]
                    && e["weights"] == d["weights"]
                    && e["se_type"] == d["se_type"]
            });
            ComplierRow {
                arm: text(&d["arm"]),
                weights: text(&d["weights"]),
                model: text(&d["model"]),
                se_type: text(&d["se_type"]),
                estimate: wald.map_or("–".into(), |e| num(&e["estimate"], 3)),
                ci: wald.map_or("–".into(), |e| {
                    format!("[{}; {}]", num(&e["ci_low"], 3), num(&e["ci_high"], 3))
                }),
                ar: ar_text(&d["anderson_rubin"]),
                ar_shape: text(&d["anderson_rubin"]["shape"]),
                first_stage_f: num(&d["first_stage_f"], 1),
                takeup: format!(
                    "{} / {}",
                    num(&d["takeup_treated"], 3),
                    num(&d["takeup_control"], 3)
                ),
            }
        })
        .collect()
}

fn ri_rows(result: &Value) -> Vec<RiRow> {
    let Some(ri) = result["ri"].as_array() else {
        return Vec::new();
    };
    ri.iter()
        .map(|r| {
            let method = match r["method"].as_str() {
                Some("exact") => format!("alle {} tildelinger", num(&r["assignments"], 0)),
                _ => format!(
                    "{} trekninger (frø {}), ± {}",
                    num(&r["draws"], 0),
                    text(&r["seed"]),
                    num(&r["mc_std_error"], 4)
                ),
            };
            let interval = if r["interval"].is_null() {
                "–".to_owned()
            } else {
                let i = &r["interval"];
                let open = if i["low"].is_null() { "(" } else { "[" };
                let close = if i["high"].is_null() { ")" } else { "]" };
                format!(
                    "{open}{}; {}{close}",
                    end(&i["low"], "−∞"),
                    end(&i["high"], "∞")
                )
            };
            RiRow {
                arm: text(&r["arm"]),
                weights: text(&r["weights"]),
                statistic: text(&r["statistic"]),
                observed: num(&r["observed"], 3),
                p: pval(&r["p_value"]),
                p_raw: r["p_value"].to_string(),
                method,
                interval,
            }
        })
        .collect()
}

fn bounds_rows(result: &Value) -> Vec<BoundsRow> {
    let Some(b) = result["bounds"].as_array() else {
        return Vec::new();
    };
    b.iter()
        .map(|b| {
            let lee = &b["lee"];
            BoundsRow {
                arm: text(&b["arm"]),
                observed: format!(
                    "{} av {} / {} av {}",
                    num(&b["observed_treated"], 0),
                    num(&b["n_treated"], 0),
                    num(&b["observed_control"], 0),
                    num(&b["n_control"], 0)
                ),
                lee: if lee.is_null() {
                    "–".to_owned()
                } else {
                    format!("[{}; {}]", num(&lee["lower"], 3), num(&lee["upper"], 3))
                },
                im: if lee.is_null() {
                    "–".to_owned()
                } else {
                    format!(
                        "[{}; {}]",
                        num(&lee["im_ci_low"], 3),
                        num(&lee["im_ci_high"], 3)
                    )
                },
                manski: format!(
                    "[{}; {}]",
                    num(&b["manski"]["lower"], 2),
                    num(&b["manski"]["upper"], 2)
                ),
            }
        })
        .collect()
}

/// The effect estimates (one row per estimator, arm, weighting and variance; the event study's
/// coefficients are in their own section), confirmatory ones marked.
pub fn estimates(d: &ReportData) -> Option<Section> {
    let result = d.result.as_ref()?;
    let all = result["estimates"].as_array()?;
    let main: Vec<&Value> = all
        .iter()
        .filter(|e| matches!(e["term"].as_str(), Some("z" | "d")))
        .collect();
    let level = conf_level(all);
    let rows = main
        .iter()
        .map(|e| EstimateRow {
            arm: text(&e["arm"]),
            estimator: text(&e["estimator"]),
            weights: text(&e["weights"]),
            se_type: text(&e["se_type"]),
            estimate: num(&e["estimate"], 3),
            estimate_raw: e["estimate"].to_string(),
            ci: format!("[{}; {}]", num(&e["ci_low"], 3), num(&e["ci_high"], 3)),
            p: pval(&e["p_value"]),
            p_holm: pval(&e["p_holm"]),
            relative: num(&e["relative_effect"], 1),
            n: num(&e["n_units"], 0),
            confirmatory: e["confirmatory"].as_bool().unwrap_or(false),
        })
        .collect();
    let skipped = result["skipped"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|k| {
                    format!(
                        "{} {} ({}): {}",
                        text(&k["estimator"]),
                        text(&k["arm"]),
                        text(&k["weights"]),
                        text(&k["error"])
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let level = crate::estimate::percent(level).replace('.', ",");
    section(
        "estimater",
        "Effektestimater",
        &EstimatesSection {
            level,
            rows,
            complier: complier_rows(result, all),
            ri: ri_rows(result),
            bounds: bounds_rows(result),
            skipped,
        },
    )
}

struct PlotFigure {
    arm: String,
    svg: crate::plot::Svg,
    caption: String,
    /// The plotted numbers: event time, estimate and interval as written.
    rows: Vec<(i32, String, String)>,
}

#[derive(Template)]
#[template(path = "pages/report/event_study.html")]
struct EventStudySection {
    plots: Vec<PlotFigure>,
}

/// The event study per arm (weighted by firm, CR1), with its pre-trend test.
pub fn event_study(d: &ReportData) -> Option<Section> {
    let result = d.result.as_ref()?;
    let all = result["estimates"].as_array()?;
    let mut arms: Vec<String> = Vec::new();
    for e in all {
        if e["estimator"] == "event_study" && e["weights"] == "firm" && e["se_type"] == "CR1" {
            let arm = text(&e["arm"]);
            if !arms.contains(&arm) {
                arms.push(arm);
            }
        }
    }
    if arms.is_empty() {
        return None;
    }
    let level = conf_level(all);
    let plots = arms
        .iter()
        .map(|arm| {
            let coefficients: Vec<Coefficient> = all
                .iter()
                .filter(|e| {
                    e["estimator"] == "event_study"
                        && e["weights"] == "firm"
                        && e["se_type"] == "CR1"
                        && e["arm"] == arm.as_str()
                })
                .filter_map(|e| {
                    Some(Coefficient {
                        event_time: i32::try_from(e["event_time"].as_i64()?).ok()?,
                        estimate: e["estimate"].as_f64()?,
                        ci_low: e["ci_low"].as_f64().unwrap_or(f64::NAN),
                        ci_high: e["ci_high"].as_f64().unwrap_or(f64::NAN),
                    })
                })
                .collect();
            let test = result["tests"].as_array().and_then(|t| {
                t.iter().find(|t| {
                    t["estimator"] == "event_study"
                        && t["se_type"] == "CR1"
                        && t["arm"] == arm.as_str()
                        && t["weights"] == "firm"
                })
            });
            let pretrend = test.map_or_else(
                || "Ingen pre-trend-test.".to_owned(),
                |t| {
                    format!(
                        "Pre-trend-test: F({}, {}) = {}, p = {}",
                        num(&t["df_num"], 0),
                        num(&t["df_den"], 0),
                        num(&t["statistic"], 2),
                        pval(&t["p_value"])
                    )
                },
            );
            let versus = all
                .iter()
                .find(|e| e["arm"] == arm.as_str())
                .map(|e| text(&e["versus"]))
                .unwrap_or_default();
            let rows = coefficients
                .iter()
                .map(|c| {
                    let n = |x: f64| num(&serde_json::json!(x), 3);
                    (
                        c.event_time,
                        n(c.estimate),
                        format!("[{}; {}]", n(c.ci_low), n(c.ci_high)),
                    )
                })
                .collect();
            let plot = EventStudyPlot {
                id: format!("event-study-{arm}"),
                title: format!("Event study: {arm} mot {versus}"),
                pretrend: pretrend.clone(),
                conf_level: level,
                reference: -1,
                coefficients,
                y_title: "Prosentpoeng".into(),
            };
            PlotFigure {
                arm: arm.clone(),
                svg: plot.render(),
                caption: format!(
                    "Effekt per kvartal før og etter randomisering, {arm} mot {versus}, \
                     vektet per virksomhet (CR1). {pretrend}."
                ),
                rows,
            }
        })
        .collect();
    section("event-study", "Event study", &EventStudySection { plots })
}

#[derive(Template)]
#[template(path = "pages/report/consort.html")]
struct ConsortSection {
    svg: crate::plot::Svg,
    arms: Vec<ConsortRow>,
    analysed_known: bool,
}

struct ConsortRow {
    name: String,
    randomized: String,
    received: String,
    analysed: String,
}

/// The CONSORT flow per arm: assessed, eligible, randomized, received help, analysed.
pub fn consort(d: &ReportData) -> Option<Section> {
    let flow = &d.balance.as_ref()?["consort"];
    let count = |v: &Value| num(v, 0);
    let analysed = |arm: &str| -> Option<String> {
        let attrition = d.result.as_ref()?["attrition"].as_array()?;
        attrition
            .iter()
            .find(|a| a["arm"] == arm)
            .map(|a| count(&a["with_post_data"]))
    };
    let arms: Vec<ConsortRow> = d
        .trial
        .protocol
        .arms
        .iter()
        .map(|a| ConsortRow {
            name: a.id.clone(),
            randomized: count(&flow["randomized_per_arm"][&a.id]),
            received: d
                .received
                .as_ref()
                .map_or_else(|| "–".to_owned(), |r| count(&r[&a.id])),
            analysed: analysed(&a.id).unwrap_or_else(|| "–".to_owned()),
        })
        .collect();
    let plot = crate::plot::consort::Consort {
        id: "consort".into(),
        assessed: count(&flow["assessed"]),
        eligible: count(&flow["eligible"]),
        arms: arms
            .iter()
            .map(|a| crate::plot::consort::ConsortArm {
                name: a.name.clone(),
                randomized: a.randomized.clone(),
                received: a.received.clone(),
                analysed: a.analysed.clone(),
            })
            .collect(),
    };
    section(
        "consort",
        "CONSORT-flyt",
        &ConsortSection {
            svg: plot.render(),
            analysed_known: d.result.is_some(),
            arms,
        },
    )
}

#[derive(Template)]
#[template(path = "pages/report/balance.html")]
struct BalanceSection {
    control: String,
    arms: Vec<String>,
    contrasts: Vec<String>,
    rows: Vec<BalanceRow>,
}

struct BalanceRow {
    covariate: String,
    cells: Vec<String>,
}

/// The balance table: each covariate's mean per arm and standardized difference against control.
pub fn balance(d: &ReportData) -> Option<Section> {
    let table = &d.balance.as_ref()?["table"];
    let arms: Vec<String> = table["arms"].as_array()?.iter().map(text).collect();
    let control = text(&table["control"]);
    let contrasts: Vec<String> = arms.iter().filter(|a| **a != control).cloned().collect();
    let rows = table["covariates"]
        .as_array()?
        .iter()
        .map(|c| {
            let mut cells: Vec<String> = c["arms"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| format!("{} ({})", num(&s["mean"], 2), num(&s["n"], 0)))
                        .collect()
                })
                .unwrap_or_default();
            for arm in &contrasts {
                let v = c["contrasts"]
                    .as_array()
                    .and_then(|cs| cs.iter().find(|x| x["arm"] == arm.as_str()))
                    .map_or_else(|| "–".to_owned(), |x| num(&x["std_difference"], 3));
                cells.push(v);
            }
            BalanceRow {
                covariate: text(&c["covariate"]),
                cells,
            }
        })
        .collect();
    section(
        "balanse",
        "Balanse ved randomisering",
        &BalanceSection {
            control,
            arms,
            contrasts,
            rows,
        },
    )
}

#[derive(Template)]
#[template(path = "pages/report/rates.html")]
struct RatesSection {
    svg: crate::plot::Svg,
    randomized: String,
    /// The arms, in the protocol's order: the table's columns.
    arms: Vec<String>,
    /// Per quarter: its label and each arm's rate as written ("–" for a masked or empty cell).
    table: Vec<(String, Vec<String>)>,
}

/// The quarterly sick-leave rate by arm, with the randomization quarter marked.
pub fn rates(d: &ReportData) -> Option<Section> {
    let quarters = d.outcomes.as_ref()?["quarters"].as_array()?;
    let mut labels: Vec<String> = quarters.iter().map(|q| text(&q["kvartal"])).collect();
    labels.sort_by_key(|k| {
        k.parse::<crate::domain::Quarter>()
            .map(|q| (q.year(), q.quarter()))
            .unwrap_or((0, 0))
    });
    labels.dedup();
    if labels.is_empty() {
        return None;
    }
    let at = |k: &str| labels.iter().position(|l| l == k).map(|i| i as f64);
    let series = d
        .trial
        .protocol
        .arms
        .iter()
        .map(|a| crate::plot::line::Series {
            name: a.id.clone(),
            points: quarters
                .iter()
                .filter(|q| q["arm"] == a.id.as_str())
                .filter_map(|q| {
                    Some((
                        at(q["kvartal"].as_str()?)?,
                        q["sykefravar_prosent"].as_f64()?,
                    ))
                })
                .collect(),
        })
        .collect();
    let windows = crate::analysis::windows(&d.trial.protocol);
    let randomized = windows.randomized_at.to_string();
    // Between the last quarter before randomization and the randomization quarter.
    let mark = at(&randomized).map(|x| (x - 0.5, format!("Randomisert {randomized}")));
    let chart = crate::plot::line::LineChart {
        id: "rate-by-arm".into(),
        title: "Sykefravær per kvartal og arm".into(),
        desc: format!(
            "Tapte dagsverk i prosent av mulige per arm og kvartal; randomisert {randomized}"
        ),
        x_labels: labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, l.clone()))
            .collect(),
        x_title: "Kvartal".into(),
        y_title: "Prosent".into(),
        series,
        mark,
    };
    let arms: Vec<String> = d.trial.protocol.arms.iter().map(|a| a.id.clone()).collect();
    let table = labels
        .iter()
        .map(|k| {
            let cells = arms
                .iter()
                .map(|arm| {
                    quarters
                        .iter()
                        .find(|q| q["arm"] == arm.as_str() && q["kvartal"] == k.as_str())
                        .map_or_else(|| "–".to_owned(), |q| num(&q["sykefravar_prosent"], 2))
                })
                .collect();
            (k.clone(), cells)
        })
        .collect();
    section(
        "sykefravaer",
        "Sykefravær per kvartal",
        &RatesSection {
            svg: chart.render(),
            randomized,
            arms,
            table,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_written_the_norwegian_way_and_masked_counts_stay() {
        assert_eq!(num(&json!(-0.8631), 3), "−0,863");
        assert_eq!(num(&json!("<5"), 0), "<5");
        assert_eq!(num(&Value::Null, 1), "–");
        assert_eq!(pval(&json!(0.00001)), "< 0,0001");
        assert_eq!(pval(&json!(0.0123)), "0,0123");
    }

    /// The estimates section shows the complier effect with its Anderson-Rubin set, the RI
    /// p-values and the attrition bounds of a result that has them.
    #[test]
    fn the_estimates_section_shows_cace_ri_and_bounds() {
        let estimates = json!([
            {"estimator": "cace_iv", "term": "received", "arm": "a", "weights": "firm",
             "se_type": "HC2", "estimate": -1.2, "ci_low": -1.9, "ci_high": -0.5},
        ]);
        let result = json!({
            "estimates": estimates,
            "iv": [{"model": "ancova", "arm": "a", "weights": "firm", "se_type": "HC2",
                    "first_stage_f": 2.5, "takeup_treated": 0.4, "takeup_control": 0.1,
                    "anderson_rubin": {"shape": "two_rays", "low": -3.0, "high": 4.5}}],
            "ri": [{"arm": "a", "weights": "firm", "statistic": "dim", "observed": -0.7,
                    "p_value": 0.0123, "method": "monte_carlo", "draws": 10000, "seed": "1",
                    "mc_std_error": 0.0011, "interval": {"low": -1.1, "high": null}}],
            "bounds": [{"arm": "a", "observed_treated": 90, "n_treated": 100,
                        "observed_control": 95, "n_control": 100,
                        "lee": {"lower": -1.0, "upper": -0.2, "im_ci_low": -1.5, "im_ci_high": 0.3},
                        "manski": {"lower": -12.0, "upper": 9.0}}],
        });
        let all = estimates.as_array().expect("rows").clone();
        let html = EstimatesSection {
            level: "95".into(),
            rows: Vec::new(),
            complier: complier_rows(&result, &all),
            ri: ri_rows(&result),
            bounds: bounds_rows(&result),
            skipped: Vec::new(),
        }
        .render()
        .expect("renders");
        for want in [
            "(−∞; −3,000] ∪ [4,500; ∞)",
            "data-ar-shape=\"two_rays\"",
            "[−1,900; −0,500]",
            "0,400 / 0,100",
            "0,0123",
            "10000 trekninger (frø 1), ± 0,0011",
            "[−1,100; ∞)",
            "90 av 100 / 95 av 100",
            "[−12,00; 9,00]",
        ] {
            assert!(html.contains(want), "{want} in {html}");
        }
    }
}
