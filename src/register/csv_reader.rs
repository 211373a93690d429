//! CSV registers: header row, comma or semicolon separated (chosen from the header line), quoted fields.

use std::collections::{BTreeMap, BTreeSet};

use super::row::{Cell, Field, Raw, RawRow, Sink};

/// What the CSV reader hands on to validation.
#[derive(Debug, Default)]
pub(super) struct CsvRead {
    pub(super) rows: Vec<RawRow>,
    /// Required columns missing from the header (reported once, at row 0).
    pub(super) missing_columns: BTreeSet<Field>,
    /// Semicolon-separated, so `1,5` is read as 1.5.
    pub(super) decimal_comma: bool,
}

/// What a header column is.
#[derive(Debug, Clone, PartialEq)]
enum Column {
    Known(Field),
    Covariate,
    /// Unknown, unnamed, duplicate or half of an incomplete pair: already reported or ignored.
    Skip,
    /// No name: ignored while every cell in it is blank (Excel's trailing `;`).
    Unnamed,
}

/// A record with the line it starts on.
struct Record {
    line: u64,
    fields: Vec<String>,
}

pub(super) fn read(text: &str, sink: &mut Sink) -> CsvRead {
    let delimiter = delimiter(text);
    let mut records = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    // Line numbers come from byte offsets (1 + the newlines before the record): the csv crate's
    // own line count is off by one for CRLF files and after skipped blank lines.
    let bytes = text.as_bytes();
    let (mut scanned, mut newlines) = (0usize, 0u64);
    for result in reader.records() {
        match result {
            Ok(record) => {
                // The crate's position can point at the line end before the record (after a
                // CRLF or blank lines): step over line ends to the record's first byte.
                let mut start = record
                    .position()
                    .and_then(|p| usize::try_from(p.byte()).ok())
                    .unwrap_or(scanned)
                    .min(bytes.len());
                while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
                    start += 1;
                }
                if start > scanned {
                    newlines += bytes[scanned..start]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count() as u64;
                    scanned = start;
                }
                records.push(Record {
                    line: newlines + 1,
                    fields: record.iter().map(str::to_owned).collect(),
                });
            }
            Err(e) => {
                // Unexpected for valid UTF-8 with `flexible`; stop rather than risk looping on it.
                sink.push(0, "", "", format!("the CSV could not be read: {e}"));
                break;
            }
        }
    }

    let mut records = records.into_iter();
    let Some(header) = records.next() else {
        return CsvRead::default();
    };
    let data: Vec<Record> = records.filter(|r| !is_blank(&r.fields)).collect();
    let (columns, missing_columns) = columns(&header.fields, &data, sink);

    let rows = data
        .into_iter()
        .filter_map(|record| {
            let row =
                usize::try_from(record.line.saturating_sub(header.line)).unwrap_or(usize::MAX);
            if record.fields.len() != columns.len() {
                let (field, reason) =
                    super::field_count_problem(record.fields.len(), &header.fields, delimiter);
                let extra = record.fields.get(columns.len()).map_or("", String::as_str);
                sink.push(row, &field, extra, reason);
                return None;
            }
            let mut raw = RawRow::new(row);
            for ((column, name), value) in columns.iter().zip(&header.fields).zip(&record.fields) {
                let Some(value) = Raw::text(value) else {
                    continue;
                };
                let cell = Cell {
                    name: name.trim().to_owned(),
                    raw: value,
                };
                match column {
                    Column::Known(field) => {
                        raw.cells.insert(*field, cell);
                    }
                    Column::Covariate => raw.covariates.push(cell),
                    Column::Skip | Column::Unnamed => {}
                }
            }
            Some(raw)
        })
        .collect();

    CsvRead {
        rows,
        missing_columns,
        decimal_comma: delimiter == b';',
    }
}

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

fn is_blank(fields: &[String]) -> bool {
    fields.iter().all(|f| f.trim().is_empty())
}

/// Classifies the header's columns, reporting (at row 0) unknown, duplicate and unnamed columns and
/// missing required ones.
fn columns(header: &[String], data: &[Record], sink: &mut Sink) -> (Vec<Column>, BTreeSet<Field>) {
    let mut columns = Vec::with_capacity(header.len());
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut fields: BTreeMap<Field, &str> = BTreeMap::new();
    for (index, name) in header.iter().enumerate() {
        let name = name.trim();
        let column = if name.is_empty() {
            Column::Unnamed
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
            Column::Skip
        } else if let Some(field) = Field::from_key(name) {
            if let Some(other) = fields.get(&field) {
                sink.push(
                    0,
                    name,
                    name,
                    format!("columns `{other}` and `{name}` are the same field; keep one"),
                );
                Column::Skip
            } else {
                fields.insert(field, name);
                Column::Known(field)
            }
        } else if Field::is_covariate(name) {
            Column::Covariate
        } else {
            sink.push(
                0,
                name,
                name,
                format!(
                    "unknown column `{name}`{}; {}",
                    Field::suggestion(name),
                    Field::expected_names()
                ),
            );
            Column::Skip
        };
        if !name.is_empty() {
            seen.entry(name).or_insert(index + 1);
        }
        columns.push(column);
    }

    for (index, column) in columns.iter().enumerate() {
        if *column == Column::Unnamed
            && data
                .iter()
                .any(|r| r.fields.get(index).is_some_and(|v| !v.trim().is_empty()))
        {
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

    // Baseline columns come in pairs; half a pair is reported once here and then ignored.
    let tapte = fields.contains_key(&Field::TapteDagsverk);
    let mulige = fields.contains_key(&Field::MuligeDagsverk);
    if tapte != mulige {
        let (given, missing) = if tapte {
            (Field::TapteDagsverk, Field::MuligeDagsverk)
        } else {
            (Field::MuligeDagsverk, Field::TapteDagsverk)
        };
        sink.push(
            0,
            missing.canonical(),
            "",
            format!(
                "missing column; `{}` is given, so `{}` is needed too (give both or neither)",
                given.canonical(),
                missing.canonical()
            ),
        );
        for column in &mut columns {
            if *column == Column::Known(given) {
                *column = Column::Skip;
            }
        }
    }

    let mut missing = BTreeSet::new();
    for field in [
        Field::Orgnr,
        Field::Naringskode,
        Field::Sektor,
        Field::AntallAnsatte,
    ] {
        if !fields.contains_key(&field) {
            sink.push(
                0,
                field.canonical(),
                "",
                format!("missing column `{}`; it is required", field.canonical()),
            );
            missing.insert(field);
        }
    }
    if !fields.contains_key(&Field::Fylke) && !fields.contains_key(&Field::Kommunenummer) {
        sink.push(
            0,
            Field::Fylke.canonical(),
            "",
            "missing column; give `fylke` (2 digits) or `kommunenummer` (4 digits)",
        );
        missing.insert(Field::Fylke);
    }
    (columns, missing)
}
