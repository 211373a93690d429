//! JSON registers: an array of objects, one object per line (NDJSON), a single object, or a page of
//! Brønnøysund's API (`{"_embedded": {"underenheter": [...]}}`). This file finds the objects and reads
//! our own §1 keys; `brreg.rs` reads Brønnøysund's.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::row::{Cell, Field, Raw, RawRow, Sink};

/// A JSON object and its row: the element's 1-based position in an array, or its line in NDJSON.
pub(super) type Element = (usize, Map<String, Value>);

/// The objects of a JSON register, each with its row. Syntax errors, non-objects and shapes that are not a
/// register are pushed to `sink`.
pub(super) fn elements(text: &str, sink: &mut Sink) -> Vec<Element> {
    let body = text.trim_start();
    match body.as_bytes().first() {
        Some(b'[') => match serde_json::from_str::<Value>(body) {
            Ok(Value::Array(items)) => objects(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| (i + 1, value)),
                sink,
            ),
            Ok(_) => Vec::new(), // starts with `[`, so an array if it parsed at all
            Err(e) => {
                syntax_error(body, &e, sink);
                Vec::new()
            }
        },
        Some(b'{') => match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(map)) if is_page(&map) => page(map, sink),
            Ok(Value::Object(map)) => vec![(1, map)],
            Ok(_) => Vec::new(), // starts with `{`, so an object if it parsed at all
            Err(e) => {
                if first_line_is_json(body) {
                    ndjson(text, sink)
                } else {
                    syntax_error(body, &e, sink);
                    Vec::new()
                }
            }
        },
        _ => {
            sink.push(
                0,
                "",
                "",
                "not a JSON register; expected an array of objects (`[{...}, ...]`) or one object per line",
            );
            Vec::new()
        }
    }
}

/// Whether the first object of a JSON upload is a Brønnøysund underenhet (or the input is an API page).
pub(super) fn looks_like_brreg(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let text = text.trim_start();
    let first = if text.starts_with('[') {
        let mut first = None;
        // Reads the first element and skips the rest without building it; a syntax error later on (say a
        // truncated file) still leaves the first element to look at.
        let _ = serde_json::Deserializer::from_str(text).deserialize_seq(FirstElement(&mut first));
        first
    } else {
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .next()
            .and_then(Result::ok)
    };
    match first {
        Some(Value::Object(map)) => map.contains_key("organisasjonsnummer") || is_page(&map),
        _ => false,
    }
}

/// Our §1 keys (with aliases); unknown keys are reported once each, at the first row that has them.
pub(super) fn read_ours(text: &str, sink: &mut Sink) -> Vec<RawRow> {
    let elements = elements(text, sink);

    let mut unknown: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (row, object) in &elements {
        for key in object.keys() {
            if Field::from_key(key).is_none() && !Field::is_covariate(key) {
                unknown.entry(key).or_insert((*row, 0)).1 += 1;
            }
        }
    }
    let mut unknown: Vec<(&str, usize, usize)> = unknown
        .into_iter()
        .map(|(key, (first, count))| (key, first, count))
        .collect();
    unknown.sort_by_key(|&(key, first, _)| (first, key));
    for (key, first, count) in unknown {
        let objects = if count == 1 {
            "this object only".to_owned()
        } else {
            format!("{count} objects, this the first")
        };
        sink.push(
            first,
            key,
            key,
            format!(
                "unknown key `{key}` (in {objects}){}; {}",
                Field::suggestion(key),
                Field::expected_names()
            ),
        );
    }

    elements
        .into_iter()
        .map(|(row, object)| {
            let mut raw = RawRow::new(row);
            for (key, value) in object {
                let Some(value) = Raw::json(&value) else {
                    continue;
                };
                let cell = Cell {
                    name: key,
                    raw: value,
                };
                if let Some(field) = Field::from_key(&cell.name) {
                    if let Some(first) = raw.cells.get(&field) {
                        let reason = format!(
                            "`{}` and `{}` are the same field; keep one",
                            first.name, cell.name
                        );
                        sink.push_cell(row, &cell, reason);
                    } else {
                        raw.cells.insert(field, cell);
                    }
                } else if Field::is_covariate(&cell.name) {
                    raw.covariates.push(cell);
                }
            }
            raw
        })
        .collect()
}

/// Keeps the objects, reporting anything else by its row.
fn objects(items: impl Iterator<Item = (usize, Value)>, sink: &mut Sink) -> Vec<Element> {
    items
        .filter_map(|(row, value)| match value {
            Value::Object(map) => Some((row, map)),
            other => {
                let kind = match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "true/false",
                    Value::Null => "null",
                    Value::Object(_) => "an object",
                };
                sink.push(
                    row,
                    "",
                    &other.to_string(),
                    format!("expected an object with one firm's fields, got {kind}"),
                );
                None
            }
        })
        .collect()
}

/// A page of Brønnøysund's API: `_embedded` (absent on an empty page, which still has `page`).
fn is_page(map: &Map<String, Value>) -> bool {
    map.contains_key("_embedded") || (map.contains_key("page") && map.contains_key("_links"))
}

/// The underenheter on an API page.
fn page(mut map: Map<String, Value>, sink: &mut Sink) -> Vec<Element> {
    let Some(embedded) = map.remove("_embedded") else {
        return Vec::new(); // an empty page: "no firms" is reported by the caller
    };
    match embedded {
        Value::Object(mut embedded) => match embedded.remove("underenheter") {
            Some(Value::Array(items)) => objects(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| (i + 1, value)),
                sink,
            ),
            _ if embedded.contains_key("enheter") => {
                sink.push(
                    0,
                    "_embedded.enheter",
                    "",
                    "this is a page of enheter (hovedenheter), but the register lists underenheter (virksomheter); fetch /enhetsregisteret/api/underenheter instead",
                );
                Vec::new()
            }
            _ => {
                sink.push(
                    0,
                    "_embedded",
                    "",
                    "expected `_embedded.underenheter`, an array of underenheter",
                );
                Vec::new()
            }
        },
        _ => {
            sink.push(
                0,
                "_embedded",
                "",
                "expected `_embedded` to be an object holding `underenheter`",
            );
            Vec::new()
        }
    }
}

/// Reports a JSON syntax error at the element and key where parsing stopped (row 0 and no field when
/// it stopped outside any element).
fn syntax_error(body: &str, e: &serde_json::Error, sink: &mut Sink) {
    let (row, field) = super::json_error_location(body)
        .map(|(row, field, _)| (row, field))
        .unwrap_or_default();
    sink.push(
        row,
        &field,
        "",
        format!("not valid JSON: {e}{}", stopped_in(&field)),
    );
}

/// `" (parsing stopped in `field`)"`, or nothing without a field.
pub(crate) fn stopped_in(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(" (parsing stopped at `{field}`)")
    }
}

/// Whether the first line of `body` is a whole JSON value on its own (so the input is NDJSON).
fn first_line_is_json(body: &str) -> bool {
    body.lines()
        .next()
        .is_some_and(|line| serde_json::from_str::<Value>(line).is_ok())
}

/// One object per line; blank lines are skipped but counted, so a row is the line number.
fn ndjson(text: &str, sink: &mut Sink) -> Vec<Element> {
    let mut values = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let row = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(value) => values.push((row, value)),
            Err(e) => {
                let field = super::json_error_location(line)
                    .map(|(_, field, _)| field)
                    .unwrap_or_default();
                sink.push(
                    row,
                    &field,
                    line,
                    format!("not valid JSON on this line: {e}{}", stopped_in(&field)),
                );
            }
        }
    }
    objects(values.into_iter(), sink)
}

/// Keeps the first element of a JSON array and skips the rest without building it.
struct FirstElement<'a>(&'a mut Option<Value>);

impl<'de> Visitor<'de> for FirstElement<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        *self.0 = seq.next_element::<Value>()?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}
