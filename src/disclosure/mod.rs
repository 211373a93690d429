//! Disclosure control for every response shown outside the directorate (docs/data-formats.md §2:
//! nothing shown outside the directorate reveals an aggregate over fewer than 5 firms or persons).
//!
//! [`mask_response`] is the one function a response to a non-directorate caller passes through.
//! It walks the whole JSON value:
//! - every count field (see [`COUNT_KEYS`]) and every integer under a `dropped` object whose value
//!   is 1..=4 is replaced by the marker string `"<5"`, so a masked value is never a bare null and
//!   a reader can tell it was masked; 0 and counts of 5 or more are kept;
//! - `n_units` and `n_obs` follow the same rule (below 5 they become `"<5"`); from 5 on they are
//!   shown, since a contrast is withheld entirely when an arm has fewer than 5 firms with data,
//!   or 1 to 4 without (`http::estimates`: n and df would give that count away);
//! - every number 1..=4 written inside a string (a `skipped` reason, an `error`, any message) is
//!   replaced by `<5`, so "a stratum has 1 cluster(s)" becomes "a stratum has <5 cluster(s)";
//!   only the values of [`IDENTIFIER_KEYS`] (arm ids, estimator names, quarters, hashes,
//!   timestamps), which name things and never count them, are left as they are.
//!
//! The HTTP layer runs every response of an aggregate route through [`mask_for`] (see
//! `http::routes::Admit::masked`), so no route can publish a count without it. Values that are
//! not counts (a mean, a rate, hours) over a cell of fewer than 5 firms are hidden by the route
//! that computes them, which marks the cell `masked: true` so a hidden value never reads as "not
//! applicable".
//!
//! This is primary suppression of counts; complementary suppression of tables published with
//! their margins is done where the tables are built.

pub mod complementary;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::Role;

/// NAV's threshold: counts below this are masked outside the directorate.
pub const MIN_CELL: u64 = 5;

/// The marker that replaces a masked count.
pub const MASKED: &str = "<5";

/// Field names that hold counts of firms, persons, clusters or observations.
pub const COUNT_KEYS: &[&str] = &[
    "n",
    "n_units",
    "n_obs",
    "n_clusters",
    "n_treatment",
    "n_control",
    "n_used",
    "assigned",
    "with_post_data",
    "no_post_data",
    "no_pre_data",
    "missing",
    "total",
    "count",
    "counts",
    "arm_totals",
    "eligible",
    "not_randomized",
    "firms",
    "persons",
    "respondents",
    "events",
    "received",
    "assessed",
    "excluded_by_reason",
    "randomized_per_arm",
    "deviations",
    "rows",
    "inserted",
    "unchanged",
    "revised",
    "received_treated",
    "received_control",
    "n_treated",
    "observed_treated",
    "observed_control",
    "n_firms",
    "n_observed",
];

/// Keys whose whole value is left as it is: a job's `progress` counts the steps of a computation
/// (`done`, `total`), never firms, and holds no text.
pub const NOT_COUNTS_KEYS: &[&str] = &["progress"];

/// Field names whose string values are identifiers (arm ids, estimator names, quarters, hashes,
/// timestamps, names): digits in them name things and never count firms, so they are not masked.
pub const IDENTIFIER_KEYS: &[&str] = &[
    "trial",
    "id",
    "protocol_hash",
    "content_hash",
    "sha256",
    "arm",
    "arms",
    "versus",
    "control",
    "estimator",
    "outcome",
    "weights",
    "term",
    "se_type",
    "kvartal",
    "randomized_at",
    "maal",
    "covariate",
    "covariates_used",
    "stratum",
    "code",
    "fylke",
    "kind",
    "source",
    "idempotency_key",
    "created_at",
    "created_by",
];

/// A count as published: the number itself, or outside the directorate the marker `"<5"` when
/// it is 1 to 4, or `"masked"` when it is hidden as a complement of such a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MaskedCount {
    /// The count (0, or 5 and more; any count for the directorate).
    Count(u64),
    /// A count of 1 to 4, hidden.
    Masked(Marker),
}

/// The marker of a hidden count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum Marker {
    /// Between 1 and 4.
    #[serde(rename = "<5")]
    Below5,
    /// Hidden although not small, so that a count of 1 to 4 beside it cannot be worked out from
    /// the published sums (complementary suppression, [`complementary::SUPPRESSED`]).
    #[serde(rename = "masked")]
    Suppressed,
}

/// Serializes a count that masking may have hidden: the number, or [`complementary::SUPPRESSED`]
/// (`"masked"`) for a hidden one, never a bare `null` that reads like "not applicable" (used by
/// the balance table and CONSORT counts, whose hidden cells are `None`).
///
/// # Errors
/// The serializer's.
pub fn hidden_count<S: serde::Serializer>(v: &Option<usize>, s: S) -> Result<S::Ok, S::Error> {
    Shown(*v).serialize(s)
}

/// [`hidden_count`] for each count of a list.
///
/// # Errors
/// The serializer's.
pub fn hidden_counts<S: serde::Serializer>(v: &[Option<usize>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|c| Shown(*c)))
}

/// [`hidden_count`] for each count of a map.
///
/// # Errors
/// The serializer's.
pub fn hidden_count_map<S: serde::Serializer>(
    v: &std::collections::BTreeMap<String, Option<usize>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, c)| (k, Shown(*c))))
}

struct Shown(Option<usize>);

impl Serialize for Shown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => s.serialize_u64(u64::try_from(n).unwrap_or(u64::MAX)),
            None => s.serialize_str(complementary::SUPPRESSED),
        }
    }
}

/// A count `part` of a published total `total` (firms of an arm with data in a quarter, that
/// received help, with a survey result), as a caller outside the directorate may see it: hidden
/// (`None`, serialized `"masked"` by [`hidden_count`]) when the rest of the total, `total - part`,
/// is 1 to 4, since the two published numbers would give that small count by subtraction. A
/// small `part` itself is left for [`mask_response`] to mark `"<5"`. For the directorate (`open`)
/// the count is always shown.
///
/// ```
/// use ia_rct::disclosure::part_of;
/// assert_eq!(part_of(98, 100, false), None); // 2 firms without: hidden
/// assert_eq!(part_of(95, 100, false), Some(95));
/// assert_eq!(part_of(100, 100, false), Some(100));
/// assert_eq!(part_of(0, 3, false), None); // all 3 without, and 3 is small
/// assert_eq!(part_of(98, 100, true), Some(98));
/// ```
pub fn part_of(part: usize, total: usize, open: bool) -> Option<usize> {
    let rest = total.saturating_sub(part) as u64;
    (open || !small(rest)).then_some(part)
}

fn small(n: u64) -> bool {
    n > 0 && n < MIN_CELL
}

/// Masks a whole response for a caller outside the directorate; see the module comment.
pub fn mask_response(value: Value) -> Value {
    walk(value, false, false)
}

/// The response `value` as `role` may see it: unchanged for the directorate, masked
/// ([`mask_response`]) for everyone else.
pub fn mask_for(role: Role, value: Value) -> Value {
    match role {
        Role::Direktorat => value,
        Role::Fylke | Role::Forsker => mask_response(value),
    }
}

fn walk(value: Value, count: bool, identifier: bool) -> Value {
    match value {
        Value::Number(n) => match n.as_u64() {
            Some(k) if count && small(k) => Value::String(MASKED.into()),
            _ => Value::Number(n),
        },
        Value::String(s) if identifier => Value::String(s),
        Value::String(s) => Value::String(mask_text(&s)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| walk(v, count, identifier))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if NOT_COUNTS_KEYS.contains(&k.as_str()) {
                        return (k, v);
                    }
                    let c = count || k == "dropped" || COUNT_KEYS.contains(&k.as_str());
                    let id = IDENTIFIER_KEYS.contains(&k.as_str());
                    let v = walk(v, c, id);
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// Replaces every standalone number 1..=4 in `text` by `<5`. Digits that belong to a longer
/// number, a decimal (`0.3`), an identifier (`q2`, `2024K3`), a zero-padded date or time
/// (`2025-02-03`) or a signed or assigned value (`e=-1`, `e <= -2`) are left alone: none of them
/// is a count.
pub fn mask_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            let before = start.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i).copied();
            let glued =
                |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '_');
            let glued_after = glued(after) && after != Some('.');
            let decimal_after =
                after == Some('.') && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit());
            let signed = before.is_some_and(|c| matches!(c, '-' | '+' | '='));
            let padded = run.len() > 1 && run.starts_with('0');
            let isolated = !(glued(before) || glued_after || decimal_after || signed || padded);
            match run.parse::<u64>() {
                Ok(k) if isolated && small(k) => out.push_str(MASKED),
                _ => out.push_str(&run),
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every count 1..=4 left anywhere in a masked response (in a count field or a message).
    fn leaks(v: &Value, count: bool, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Number(n) if count && n.as_u64().is_some_and(small) => out.push(path.into()),
            Value::String(s) if mask_text(s) != *s => out.push(format!("{path}: {s}")),
            Value::Array(a) => a.iter().for_each(|x| leaks(x, count, path, out)),
            Value::Object(m) => m.iter().for_each(|(k, x)| {
                let c = count || k == "dropped" || COUNT_KEYS.contains(&k.as_str());
                leaks(x, c, &format!("{path}.{k}"), out)
            }),
            _ => {}
        }
    }

    #[test]
    fn a_jobs_progress_counts_steps_not_firms() {
        let job = json!({"id": 3, "progress": {"stage": "load", "done": 2, "total": 3},
                         "result": {"attrition": [{"arm": "a", "assigned": 3}]}});
        let masked = mask_for(Role::Forsker, job);
        assert_eq!(masked["progress"]["total"], json!(3));
        assert_eq!(masked["progress"]["done"], json!(2));
        assert_eq!(masked["result"]["attrition"][0]["assigned"], json!(MASKED));
    }

    #[test]
    fn estimates_response_has_no_small_count_anywhere() {
        let response = json!({
            "trial": "t1", "vintage": 3, "pre_quarters": 4,
            "estimates": [{"arm": "ledere", "estimate": 0.3, "n_units": 3, "n_obs": 12,
                           "dropped": {"no_post_data": 1, "leverage_one": 0}}],
            "skipped": [{"arm": "digital", "error":
                "a stratum has 1 cluster(s) in the arm and 2 in the control group"}],
            "attrition": [{"arm": "ledere", "assigned": 7, "with_post_data": 6,
                           "no_post_data": 1, "no_pre_data": 0}],
        });
        let masked = mask_response(response);
        let mut found = Vec::new();
        leaks(&masked, false, "$", &mut found);
        assert!(found.is_empty(), "small counts left: {found:?}");
        assert_eq!(
            masked["estimates"][0]["dropped"]["no_post_data"],
            json!(MASKED)
        );
        assert_eq!(masked["estimates"][0]["n_units"], json!(MASKED));
        assert_eq!(masked["estimates"][0]["n_obs"], json!(12));
        assert_eq!(masked["attrition"][0]["no_post_data"], json!(MASKED));
        assert_eq!(masked["attrition"][0]["assigned"], json!(7));
        assert_eq!(
            masked["skipped"][0]["error"],
            json!("a stratum has <5 cluster(s) in the arm and <5 in the control group")
        );
        // Non-count fields are not counts: vintage and quarters stay.
        assert_eq!(masked["vintage"], json!(3));
        assert_eq!(masked["pre_quarters"], json!(4));
        assert_eq!(masked["estimates"][0]["estimate"], json!(0.3));
    }

    #[test]
    fn protocol_deviation_counts_are_masked() {
        let masked = mask_response(json!({
            "protocol_deviations": [
                {"arm": "kontroll", "fylke": "03", "kind": "control_contacted", "deviations": 2, "firms": 1},
                {"arm": "ledere", "fylke": "46", "kind": "control_assisted", "deviations": 7, "firms": 6},
            ]
        }));
        let cells = &masked["protocol_deviations"];
        // A fylke code names a county; Oslo's "03" is not a count of 3.
        assert_eq!(cells[0]["fylke"], json!("03"));
        assert_eq!(cells[0]["deviations"], json!(MASKED));
        assert_eq!(cells[0]["firms"], json!(MASKED));
        assert_eq!(cells[1]["deviations"], json!(7));
        assert_eq!(cells[1]["firms"], json!(6));
    }

    #[test]
    fn text_masks_only_standalone_small_numbers() {
        assert_eq!(mask_text("fewer than 5 firms"), "fewer than 5 firms");
        assert_eq!(
            mask_text("2024K3 and q2, 0.3, 12 firms, 3 firms."),
            "2024K3 and q2, 0.3, 12 firms, <5 firms."
        );
        assert_eq!(mask_text("arm has 4."), "arm has <5.");
        assert_eq!(mask_text("2025-02-03T04:05:06Z"), "2025-02-03T04:05:06Z");
        assert_eq!(
            mask_text("all 3 leads (e <= -2) are zero; e=-1"),
            "all <5 leads (e <= -2) are zero; e=-1"
        );
    }

    #[test]
    fn identifiers_are_not_masked_and_the_directorate_sees_everything() {
        let response = json!({"estimates": [{"term": "e=-3", "arm": "arm2", "vintage": 3,
                              "design": "1 stratum", "n_units": 2}]});
        let masked = mask_for(Role::Forsker, response.clone());
        assert_eq!(masked["estimates"][0]["term"], "e=-3");
        assert_eq!(masked["estimates"][0]["vintage"], 3);
        assert_eq!(masked["estimates"][0]["design"], "<5 stratum");
        assert_eq!(masked["estimates"][0]["n_units"], MASKED);
        assert_eq!(mask_for(Role::Fylke, response.clone()), masked);
        assert_eq!(mask_for(Role::Direktorat, response.clone()), response);
    }

    #[test]
    fn the_count_schema_serializes_as_a_number_or_the_marker() {
        assert_eq!(
            serde_json::to_value(MaskedCount::Count(7)).ok(),
            Some(json!(7))
        );
        assert_eq!(
            serde_json::to_value(MaskedCount::Masked(Marker::Below5)).ok(),
            Some(json!(MASKED))
        );
        assert_eq!(
            serde_json::to_value(MaskedCount::Masked(Marker::Suppressed)).ok(),
            Some(json!(complementary::SUPPRESSED))
        );
    }
}
