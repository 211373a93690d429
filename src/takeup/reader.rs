//! The table reader shared by take-up and survey uploads: CSV (comma or semicolon, header row, optional
//! BOM) or JSON (an array of objects, one object, or one object per line), as `docs/data-formats.md` requires of
//! every reader. It turns bytes into [`Record`]s of named, untyped cells and reports file-level problems
//! (encoding, syntax, unknown or missing columns); the callers give the cells their types.
//!
//! Row numbers follow the register (`crate::register::RowError`): for CSV the line's offset from the header
//! line (blank lines count), for a JSON array the element's 1-based position, for NDJSON the line number;
//! row 0 is the header or the whole file.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::domain::Orgnr;
use crate::register::{MAX_STORED_ERRORS, RegisterErrors, RowError};

/// Longest `value` kept in a [`RowError`], in characters (as the register does).
const MAX_VALUE_CHARS: usize = 120;

/// Cuts `s` after [`MAX_VALUE_CHARS`] characters, marking the cut with `…`.
pub(super) fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE_CHARS) {
        Some((end, _)) => format!("{}…", s.get(..end).unwrap_or_default()),
        None => s.to_owned(),
    }
}

/// Collects [`RowError`]s: keeps the first [`MAX_STORED_ERRORS`], counts all.
#[derive(Debug, Default)]
pub(super) struct Sink {
    errors: Vec<RowError>,
    total: usize,
}

impl Sink {
    pub(super) fn push(&mut self, row: usize, field: &str, value: &str, reason: impl Into<String>) {
        self.total += 1;
        if self.errors.len() < MAX_STORED_ERRORS {
            self.errors.push(RowError {
                row,
                field: field.to_owned(),
                value: truncate(value),
                reason: reason.into(),
            });
        }
    }

    pub(super) fn push_cell(&mut self, row: usize, cell: &Cell, reason: impl Into<String>) {
        self.push(row, &cell.name, &cell.raw.shown(), reason);
    }

    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// `Ok(value)` when nothing was reported, else every problem; the kept ones sorted by row (stable, so
    /// file-level problems come first and a row's own problems keep their order).
    pub(super) fn finish<T>(mut self, value: T) -> Result<T, RegisterErrors> {
        if self.total == 0 {
            Ok(value)
        } else {
            self.errors.sort_by_key(|e| e.row);
            Err(RegisterErrors {
                errors: self.errors,
                total: self.total,
            })
        }
    }
}

/// A value as it stood in the file. Blank text and JSON `null` are "not given" and never become a `Raw`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Raw {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
    /// A JSON object or array where a single value belongs, shown compactly.
    Nested(String),
}

impl Raw {
    /// A CSV cell or JSON string, trimmed; `None` if blank.
    fn text(s: &str) -> Option<Raw> {
        let trimmed = s.trim();
        (!trimmed.is_empty()).then(|| Raw::Text(trimmed.to_owned()))
    }

    fn json(value: &Value) -> Option<Raw> {
        match value {
            Value::Null => None,
            Value::String(s) => Raw::text(s),
            Value::Number(n) => Some(Raw::Number(n.clone())),
            Value::Bool(b) => Some(Raw::Bool(*b)),
            Value::Array(_) | Value::Object(_) => Some(Raw::Nested(value.to_string())),
        }
    }

    /// The value as shown in an error.
    pub(super) fn shown(&self) -> String {
        match self {
            Raw::Text(s) | Raw::Nested(s) => truncate(s),
            Raw::Number(n) => n.to_string(),
            Raw::Bool(b) => b.to_string(),
        }
    }

    /// What kind of value it is, for "expected …, got …" messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Raw::Text(_) => "text",
            Raw::Number(_) => "a number",
            Raw::Bool(_) => "true/false",
            Raw::Nested(s) if s.starts_with('[') => "a JSON array",
            Raw::Nested(_) => "a JSON object",
        }
    }
}

/// A named value in a row.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cell {
    /// The column or key as written in the file.
    pub(super) name: String,
    pub(super) raw: Raw,
}

/// The columns an upload may have.
#[derive(Debug)]
pub(super) struct Spec {
    /// Every accepted column name (matched exactly).
    pub(super) columns: &'static [&'static str],
    /// The required columns, each with what to give in it (for "missing" messages).
    pub(super) required: &'static [(&'static str, &'static str)],
    /// What one row is, for messages ("take-up event", "survey cell").
    pub(super) what: &'static str,
}

impl Spec {
    fn known(&self, name: &str) -> Option<&'static str> {
        self.columns.iter().copied().find(|c| *c == name)
    }

    /// "unknown column" message body: a close name if there is one, and the accepted names.
    fn unknown(&self, name: &str, noun: &str) -> String {
        let normalise = |s: &str| {
            s.trim()
                .to_lowercase()
                .replace(['-', ' '], "_")
                .replace('æ', "ae")
                .replace('ø', "o")
                .replace('å', "aa")
        };
        let wanted = normalise(name);
        let close = self.columns.iter().find(|c| {
            normalise(c) == wanted || normalise(c).replace('_', "") == wanted.replace('_', "")
        });
        let hint = match close {
            Some(c) => format!(" (did you mean `{c}`? names are matched exactly)"),
            None if name.starts_with("x_") => {
                " (numeric x_* covariates belong in the firm register, not here)".to_owned()
            }
            None => String::new(),
        };
        format!(
            "unknown {noun} `{name}`{hint}; expected {}",
            self.columns.join(", ")
        )
    }
}

/// One data row: its known cells (blank ones left out), keyed by canonical column name.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Record {
    pub(super) row: usize,
    cells: BTreeMap<&'static str, Cell>,
}

impl Record {
    pub(super) fn get(&self, column: &str) -> Option<&Cell> {
        self.cells.get(column)
    }
}

/// What a read hands on.
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) records: Vec<Record>,
    /// Semicolon-separated CSV, so `1,5` is read as 1.5 (as Norwegian Excel writes it).
    pub(super) decimal_comma: bool,
    /// Required columns absent from the CSV header: reported once at row 0, not again per row.
    missing: BTreeSet<&'static str>,
    spec_required: &'static [(&'static str, &'static str)],
}

impl Table {
    /// The cell of a required column, or `None` after reporting it missing (unless the header did).
    pub(super) fn required<'r>(
        &self,
        record: &'r Record,
        column: &'static str,
        sink: &mut Sink,
    ) -> Option<&'r Cell> {
        let cell = record.get(column);
        if cell.is_none() && !self.missing.contains(column) {
            let give = self
                .spec_required
                .iter()
                .find(|(c, _)| *c == column)
                .map_or("a value", |(_, give)| give);
            sink.push(record.row, column, "", format!("missing; give {give}"));
        }
        cell
    }

    /// A finite number; in semicolon CSV `1,5` (one comma, no point) reads as 1.5.
    pub(super) fn number(&self, raw: &Raw) -> Result<f64, String> {
        let value = match raw {
            Raw::Number(n) => n.as_f64(),
            Raw::Text(s) => {
                let text = if self.decimal_comma && s.matches(',').count() == 1 && !s.contains('.')
                {
                    s.replace(',', ".")
                } else {
                    s.clone()
                };
                text.parse::<f64>().ok()
            }
            other => return Err(format!("expected a number, got {}", other.kind())),
        };
        match value {
            Some(v) if v.is_finite() => Ok(v),
            Some(_) => Err("not a finite number (too large, infinite or NaN)".to_owned()),
            None if self.decimal_comma => Err("not a number; write e.g. 7.5 or 7,5".to_owned()),
            None => Err("not a number; write e.g. 7.5 (decimal point)".to_owned()),
        }
    }
}

/// The value as text; numbers are written out when `numbers` (a JSON `974760673` is an orgnr).
pub(super) fn text(row: usize, cell: &Cell, numbers: bool, sink: &mut Sink) -> Option<String> {
    match &cell.raw {
        Raw::Text(s) => Some(s.clone()),
        Raw::Number(n) if numbers => Some(n.to_string()),
        other => {
            let expected = if numbers { "text or a number" } else { "text" };
            sink.push_cell(
                row,
                cell,
                format!("expected {expected}, got {}", other.kind()),
            );
            None
        }
    }
}

/// Whether a text may span lines ([`crate::domain::check_free_text`]) or is one line
/// ([`crate::domain::check_line`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lines {
    One,
    Many,
}

/// Text of at most `max` characters, without control or format characters (line breaks and tabs
/// allowed where `lines` is [`Lines::Many`]).
pub(super) fn bounded_text(
    row: usize,
    cell: &Cell,
    max: usize,
    lines: Lines,
    sink: &mut Sink,
) -> Option<String> {
    let text = text(row, cell, true, sink)?;
    let checked = match lines {
        Lines::One => crate::domain::check_line(&text, max),
        Lines::Many => crate::domain::check_free_text(&text, max),
    };
    match checked {
        Ok(()) => Some(text),
        Err(e) => {
            sink.push_cell(row, cell, format!("`{}` {e}", cell.name));
            None
        }
    }
}

pub(super) fn orgnr(row: usize, cell: &Cell, sink: &mut Sink) -> Option<Orgnr> {
    let text = text(row, cell, true, sink)?;
    text.parse::<Orgnr>()
        .map_err(|e| sink.push_cell(row, cell, e.to_string()))
        .ok()
}

/// A whole number >= 0 that fits in `u32` (`3.0` is 3); `what` says what the number counts.
pub(super) fn whole(raw: &Raw, what: &str) -> Result<u32, String> {
    let expected = format!("expected {what}, a whole number >= 0");
    let value = match raw {
        Raw::Number(n) => match n.as_u64() {
            Some(u) => return u32::try_from(u).map_err(|_| format!("{expected}; too large")),
            None => n.as_f64(),
        },
        Raw::Text(s) => match s.parse::<u64>() {
            Ok(u) => return u32::try_from(u).map_err(|_| format!("{expected}; too large")),
            Err(_) => s.parse::<f64>().ok(),
        },
        other => return Err(format!("{expected}, got {}", other.kind())),
    };
    match value {
        Some(v) if v.is_finite() && v < 0.0 => Err(format!("{expected}; it cannot be negative")),
        Some(v) if v.is_finite() && v.fract() != 0.0 => {
            Err(format!("{expected}; it has a fractional part"))
        }
        Some(v) if v.is_finite() && v <= f64::from(u32::MAX) => Ok(v as u32),
        Some(v) if v.is_finite() => Err(format!("{expected}; too large")),
        _ => Err(expected),
    }
}

/// Reads an upload: JSON if its first byte after any BOM and whitespace is `[` or `{`, else CSV.
pub(super) fn read(input: &[u8], spec: &Spec, sink: &mut Sink) -> Table {
    let body = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let empty = Table {
        spec_required: spec.required,
        ..Table::default()
    };
    if body.trim_ascii().is_empty() {
        sink.push(
            0,
            "",
            "",
            format!(
                "the upload is empty; expected a header row and at least one {}",
                spec.what
            ),
        );
        return empty;
    }
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) => {
            sink.push(
                0,
                "",
                "",
                format!(
                    "the file is not UTF-8 (invalid byte at position {}); save it as UTF-8 (in Excel: \"CSV UTF-8\")",
                    e.valid_up_to()
                ),
            );
            return empty;
        }
    };
    let mut table = match text.trim_start().as_bytes().first() {
        Some(b'[' | b'{') => Table {
            records: read_json(text, spec, sink),
            ..empty
        },
        _ => read_csv(text, spec, sink, empty),
    };
    table.spec_required = spec.required;
    table
}

// ---------------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------------

/// `;` if the header line has more semicolons than commas outside quotes, else `,`.
fn delimiter(text: &str) -> u8 {
    let header = text.trim_start().lines().next().unwrap_or_default();
    let (mut commas, mut semicolons, mut quoted) = (0usize, 0usize, false);
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => commas += 1,
            ';' if !quoted => semicolons += 1,
            _ => {}
        }
    }
    if semicolons > commas { b';' } else { b',' }
}

fn read_csv(text: &str, spec: &Spec, sink: &mut Sink, mut table: Table) -> Table {
    // The csv crate counts a CRLF file's lines one short from the second record on (its
    // `Position::line` of the first data record equals the header's), so rows are numbered on LF text.
    let text = text.replace("\r\n", "\n");
    let text = text.as_str();
    let delimiter = delimiter(text);
    table.decimal_comma = delimiter == b';';
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records: Vec<(u64, Vec<String>)> = Vec::new();
    for result in reader.records() {
        match result {
            Ok(record) => records.push((
                record.position().map_or(0, csv::Position::line),
                record.iter().map(str::to_owned).collect(),
            )),
            Err(e) => {
                // Unexpected for valid UTF-8 with `flexible`; stop rather than risk looping on it.
                sink.push(0, "", "", format!("the CSV could not be read: {e}"));
                break;
            }
        }
    }
    let mut records = records.into_iter();
    let Some((header_line, header)) = records.next() else {
        return table;
    };

    // Classify the header's columns.
    let mut columns: Vec<Option<&'static str>> = Vec::with_capacity(header.len());
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unnamed = Vec::new();
    for (index, name) in header.iter().enumerate() {
        let name = name.trim();
        let column = if name.is_empty() {
            unnamed.push(index);
            None
        } else if let Some(first) = seen.get(name) {
            sink.push(
                0,
                name,
                name,
                format!(
                    "column `{name}` appears twice (columns {first} and {}); keep one",
                    index + 1
                ),
            );
            None
        } else if let Some(known) = spec.known(name) {
            Some(known)
        } else {
            sink.push(0, name, name, spec.unknown(name, "column"));
            None
        };
        if !name.is_empty() {
            seen.entry(name).or_insert(index + 1);
        }
        columns.push(column);
    }
    for (column, give) in spec.required {
        if !columns.contains(&Some(*column)) {
            sink.push(
                0,
                column,
                "",
                format!("missing column `{column}`; it is required (give {give})"),
            );
            table.missing.insert(column);
        }
    }

    let data: Vec<(u64, Vec<String>)> = records
        .filter(|(_, fields)| !fields.iter().all(|f| f.trim().is_empty()))
        .collect();
    for index in unnamed {
        if data.iter().any(|(_, fields)| {
            fields
                .get(index)
                .is_some_and(|value| !value.trim().is_empty())
        }) {
            sink.push(
                0,
                "",
                "",
                format!(
                    "column {} has no name in the header but holds values; name it or remove it",
                    index + 1
                ),
            );
        }
    }

    for (line, fields) in data {
        let row = usize::try_from(line.saturating_sub(header_line)).unwrap_or(usize::MAX);
        if fields.len() != columns.len() {
            let (field, reason) =
                crate::register::field_count_problem(fields.len(), &header, delimiter);
            let extra = fields.get(columns.len()).map_or("", String::as_str);
            sink.push(row, &field, extra, reason);
            continue;
        }
        let mut cells = BTreeMap::new();
        for ((column, name), value) in columns.iter().zip(&header).zip(&fields) {
            if let (Some(column), Some(raw)) = (column, Raw::text(value)) {
                cells.insert(
                    *column,
                    Cell {
                        name: name.trim().to_owned(),
                        raw,
                    },
                );
            }
        }
        table.records.push(Record { row, cells });
    }
    table
}

// ---------------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------------

fn read_json(text: &str, spec: &Spec, sink: &mut Sink) -> Vec<Record> {
    let objects = objects(text, spec, sink);

    // Unknown keys: once each, at the first row that has them.
    let mut unknown: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (row, object) in &objects {
        for key in object.keys() {
            if spec.known(key).is_none() {
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
        let where_ = if count == 1 {
            "this object only".to_owned()
        } else {
            format!("{count} objects, this the first")
        };
        sink.push(
            first,
            key,
            key,
            format!("{} (in {where_})", spec.unknown(key, "key")),
        );
    }

    objects
        .iter()
        .map(|(row, object)| Record {
            row: *row,
            cells: object
                .iter()
                .filter_map(|(key, value)| {
                    let column = spec.known(key)?;
                    let raw = Raw::json(value)?;
                    Some((
                        column,
                        Cell {
                            name: key.clone(),
                            raw,
                        },
                    ))
                })
                .collect(),
        })
        .collect()
}

/// The objects of a JSON upload with their rows; anything else is reported.
fn objects(text: &str, spec: &Spec, sink: &mut Sink) -> Vec<(usize, Map<String, Value>)> {
    let body = text.trim_start();
    let values: Vec<(usize, Value)> = if body.starts_with('[') {
        match serde_json::from_str::<Value>(body) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i + 1, v))
                .collect(),
            Ok(_) => Vec::new(), // starts with `[`, so an array if it parsed at all
            Err(e) => {
                syntax_error(body, &e, sink);
                Vec::new()
            }
        }
    } else {
        match serde_json::from_str::<Value>(body) {
            Ok(value) => vec![(1, value)],
            Err(e) => {
                let first_line_is_json = body
                    .lines()
                    .next()
                    .is_some_and(|line| serde_json::from_str::<Value>(line).is_ok());
                if first_line_is_json {
                    ndjson(text, sink)
                } else {
                    syntax_error(body, &e, sink);
                    Vec::new()
                }
            }
        }
    };
    values
        .into_iter()
        .filter_map(|(row, value)| match value {
            Value::Object(map) => Some((row, map)),
            other => {
                let raw = Raw::json(&other).unwrap_or(Raw::Text("null".to_owned()));
                let kind = if other.is_null() { "null" } else { raw.kind() };
                sink.push(
                    row,
                    "",
                    &other.to_string(),
                    format!(
                        "expected an object with one {}'s fields, got {kind}",
                        spec.what
                    ),
                );
                None
            }
        })
        .collect()
}

/// Reports a JSON syntax error at the element and key where parsing stopped (row 0 and no field when
/// it stopped outside any element).
fn syntax_error(body: &str, e: &serde_json::Error, sink: &mut Sink) {
    let (row, field) = crate::register::json_error_location(body)
        .map(|(row, field, _)| (row, field))
        .unwrap_or_default();
    sink.push(
        row,
        &field,
        "",
        format!("not valid JSON: {e}{}", stopped_in(&field)),
    );
}

/// `" (parsing stopped at `field`)"`, or nothing without a field.
fn stopped_in(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!(" (parsing stopped at `{field}`)")
    }
}

/// One value per line; blank lines are skipped but counted, so a row is the line number.
fn ndjson(text: &str, sink: &mut Sink) -> Vec<(usize, Value)> {
    let mut values = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(value) => values.push((index + 1, value)),
            Err(e) => {
                let field = crate::register::json_error_location(line)
                    .map(|(_, field, _)| field)
                    .unwrap_or_default();
                sink.push(
                    index + 1,
                    &field,
                    line,
                    format!("not valid JSON on this line: {e}{}", stopped_in(&field)),
                );
            }
        }
    }
    values
}
