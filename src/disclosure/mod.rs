//! Disclosure control for every response shown outside the directorate (data-formats.md §2:
//! nothing shown outside the directorate reveals an aggregate over fewer than 5 firms or persons).
//!
//! [`mask_response`] is the one function a response to a non-directorate caller passes through.
//! It walks the whole JSON value:
//! - every count field (see [`COUNT_KEYS`]) and every integer under a `dropped` object whose value
//!   is 1..=4 is replaced by the marker string `"<5"`, so a masked value is never a bare null and
//!   a reader can tell it was masked; 0 and counts of 5 or more are kept;
//! - `n_units` and `n_obs` follow the same rule (below 5 they become `"<5"`); from 5 on they are
//!   shown, since a contrast is withheld entirely when an arm has fewer than 5 firms;
//! - every number 1..=4 written inside a message string (a `skipped` reason, an `error`) is
//!   replaced by `<5`, so "a stratum has 1 cluster(s)" becomes "a stratum has <5 cluster(s)".
//!
//! This is primary suppression of counts; complementary suppression of tables published with
//! their margins is not done here yet.

pub mod complementary;

use serde_json::Value;

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
];

fn small(n: u64) -> bool {
    n > 0 && n < MIN_CELL
}

/// Masks a whole response for a caller outside the directorate; see the module comment.
pub fn mask_response(value: Value) -> Value {
    walk(value, false)
}

fn walk(value: Value, count: bool) -> Value {
    match value {
        Value::Number(n) => match n.as_u64() {
            Some(k) if count && small(k) => Value::String(MASKED.into()),
            _ => Value::Number(n),
        },
        Value::String(s) => Value::String(mask_text(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| walk(v, count)).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let c = count || k == "dropped" || COUNT_KEYS.contains(&k.as_str());
                    let v = walk(v, c);
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// Replaces every standalone number 1..=4 in `text` by `<5`. Digits that belong to a longer
/// number, a decimal (`0.3`) or an identifier (`q2`, `2024K3`) are left alone.
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
            let isolated = !(glued(before) || glued_after || decimal_after);
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
    fn text_masks_only_standalone_small_numbers() {
        assert_eq!(mask_text("fewer than 5 firms"), "fewer than 5 firms");
        assert_eq!(
            mask_text("2024K3 and q2, 0.3, 12 firms, 3 firms."),
            "2024K3 and q2, 0.3, 12 firms, <5 firms."
        );
        assert_eq!(mask_text("arm has 4."), "arm has <5.");
    }
}
