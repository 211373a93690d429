//! What every reader produces ([`RawRow`]: named, untyped values) and the one place they become a
//! [`Firm`] or [`RowError`]s, so the three formats cannot drift apart in what they accept.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{FylkeCode, Naeringskode, Orgnr, Sektor};

use super::{
    BaselineDagsverk, Firm, MAX_COVARIATE, MAX_COVARIATE_NAME_CHARS, MAX_DAGSVERK, MAX_EMPLOYEES,
    MAX_NAVN_CHARS, MAX_STORED_ERRORS, RegisterErrors, RegisterOptions, RowError,
};

/// Longest `value` kept in a [`RowError`], in characters.
const MAX_VALUE_CHARS: usize = 120;

/// A column of `docs/data-formats.md` §1 (plus the baseline extension), whatever it is called in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Field {
    Orgnr,
    Navn,
    Fylke,
    Kommunenummer,
    Naringskode,
    Sektor,
    AntallAnsatte,
    OverordnetEnhet,
    Villig,
    TapteDagsverk,
    MuligeDagsverk,
}

impl Field {
    pub(super) const ALL: [Field; 11] = [
        Field::Orgnr,
        Field::Navn,
        Field::Fylke,
        Field::Kommunenummer,
        Field::Naringskode,
        Field::Sektor,
        Field::AntallAnsatte,
        Field::OverordnetEnhet,
        Field::Villig,
        Field::TapteDagsverk,
        Field::MuligeDagsverk,
    ];

    /// The name `docs/data-formats.md` §1 gives the column.
    pub(super) fn canonical(self) -> &'static str {
        match self {
            Field::Orgnr => "orgnr",
            Field::Navn => "navn",
            Field::Fylke => "fylke",
            Field::Kommunenummer => "kommunenummer",
            Field::Naringskode => "naringskode",
            Field::Sektor => "sektor",
            Field::AntallAnsatte => "antall_ansatte",
            Field::OverordnetEnhet => "overordnet_enhet",
            Field::Villig => "villig",
            Field::TapteDagsverk => "tapte_dagsverk",
            Field::MuligeDagsverk => "mulige_dagsverk",
        }
    }

    /// The column for a name in the file: the canonical name or one of its §1 aliases, matched exactly.
    pub(super) fn from_key(key: &str) -> Option<Field> {
        match key {
            "næringskode" => Some(Field::Naringskode),
            "antallAnsatte" => Some(Field::AntallAnsatte),
            "overordnetEnhet" => Some(Field::OverordnetEnhet),
            _ => Field::ALL.into_iter().find(|f| f.canonical() == key),
        }
    }

    /// Whether a column named `key` is a covariate (`x_*`).
    pub(super) fn is_covariate(key: &str) -> bool {
        key.starts_with("x_")
    }

    /// The list of accepted names, for "unknown column" messages.
    pub(super) fn expected_names() -> String {
        let names: Vec<&str> = Field::ALL.iter().map(|f| f.canonical()).collect();
        format!(
            "expected {} (aliases næringskode, antallAnsatte, overordnetEnhet) or a numeric covariate named x_*",
            names.join(", ")
        )
    }

    /// A close known name for a misspelt one (case, `-` or space for `_`, æ for a): `" (did you mean …?)"`.
    pub(super) fn suggestion(key: &str) -> String {
        let normalise = |s: &str| {
            s.trim()
                .to_lowercase()
                .replace(['-', ' '], "_")
                .replace('æ', "a")
        };
        let wanted = normalise(key);
        let aliases = ["næringskode", "antallAnsatte", "overordnetEnhet"];
        let known = Field::ALL
            .iter()
            .map(|f| f.canonical())
            .chain(aliases)
            .find(|name| normalise(name) == wanted || normalise(name).replace('_', "") == wanted);
        match known {
            Some(name) => format!(" (did you mean `{name}`? names are matched exactly)"),
            None if wanted.starts_with("x_") => {
                " (covariate columns start with a lower-case `x_`)".to_owned()
            }
            None => String::new(),
        }
    }
}

/// A value as it stood in the file, before it is given a type. Blank text and JSON `null` never become a
/// `Raw`: they are "not given".
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Raw {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
    /// A JSON object or array where a single value belongs, shown compactly.
    Nested(String),
}

impl Raw {
    /// A CSV cell or JSON string: trimmed; `None` if blank.
    pub(super) fn text(s: &str) -> Option<Raw> {
        let trimmed = s.trim();
        (!trimmed.is_empty()).then(|| Raw::Text(trimmed.to_owned()))
    }

    /// A JSON value; `None` for `null` and blank strings.
    pub(super) fn json(value: &serde_json::Value) -> Option<Raw> {
        use serde_json::Value;
        match value {
            Value::Null => None,
            Value::String(s) => Raw::text(s),
            Value::Number(n) => Some(Raw::Number(n.clone())),
            Value::Bool(b) => Some(Raw::Bool(*b)),
            Value::Array(_) | Value::Object(_) => Some(Raw::Nested(value.to_string())),
        }
    }

    /// The value as shown in an error.
    fn shown(&self) -> String {
        let full = match self {
            Raw::Text(s) | Raw::Nested(s) => s.clone(),
            Raw::Number(n) => n.to_string(),
            Raw::Bool(b) => b.to_string(),
        };
        truncate(&full)
    }

    /// What kind of value it is, for "expected …, got …" messages.
    fn kind(&self) -> &'static str {
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

/// One data row from any reader: the §1 fields it gives (blank ones left out) and its `x_*` covariates.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct RawRow {
    pub(super) row: usize,
    pub(super) cells: BTreeMap<Field, Cell>,
    pub(super) covariates: Vec<Cell>,
}

impl RawRow {
    pub(super) fn new(row: usize) -> RawRow {
        RawRow {
            row,
            ..RawRow::default()
        }
    }
}

/// Collects [`RowError`]s: keeps the first [`MAX_STORED_ERRORS`], counts all.
#[derive(Debug, Default)]
pub(super) struct Sink {
    errors: Vec<RowError>,
    pub(super) total: usize,
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

    pub(super) fn into_errors(self) -> RegisterErrors {
        RegisterErrors {
            errors: self.errors,
            total: self.total,
        }
    }
}

/// Cuts `s` after [`MAX_VALUE_CHARS`] characters (on a character boundary), marking the cut with `…`.
pub(super) fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE_CHARS) {
        Some((end, _)) => format!("{}…", s.get(..end).unwrap_or_default()),
        None => s.to_owned(),
    }
}

/// Whose names and rules a row follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `docs/data-formats.md` §1 columns (CSV or JSON).
    Ours,
    /// Brønnøysund underenhet JSON.
    Brreg,
}

impl Dialect {
    /// The name to report for a field that is missing.
    fn name(self, field: Field) -> &'static str {
        match (self, field) {
            (Dialect::Brreg, Field::Orgnr) => "organisasjonsnummer",
            (Dialect::Brreg, Field::Fylke | Field::Kommunenummer) => {
                "beliggenhetsadresse.kommunenummer"
            }
            (Dialect::Brreg, Field::Naringskode) => "naeringskode1.kode",
            (Dialect::Brreg, Field::AntallAnsatte) => "antallAnsatte",
            (Dialect::Brreg, Field::OverordnetEnhet) => "overordnetEnhet",
            _ => field.canonical(),
        }
    }

    /// Why a missing required field matters and what to do.
    fn missing_reason(self, field: Field) -> &'static str {
        match (self, field) {
            (Dialect::Ours, Field::Orgnr) => {
                "missing; every row needs the virksomhet's 9-digit orgnr"
            }
            (Dialect::Brreg, Field::Orgnr) => {
                "missing; every underenhet needs its organisasjonsnummer"
            }
            (Dialect::Ours, Field::Fylke) => {
                "missing; give `fylke` (2 digits, e.g. 46) or `kommunenummer` (4 digits, e.g. 4601)"
            }
            (Dialect::Brreg, Field::Fylke) => {
                "missing; the fylke is derived from beliggenhetsadresse.kommunenummer, which this underenhet lacks; leave it out or upload it in the CSV/JSON register format with `fylke`"
            }
            (Dialect::Ours, Field::Naringskode) => {
                "missing; give the 5-digit næringskode, e.g. 88.911"
            }
            (Dialect::Brreg, Field::Naringskode) => {
                "missing; Brønnøysund lists no naeringskode1 for this underenhet (ikke næringsdrivende), so it has no bransje; leave it out or upload it in the CSV/JSON register format with `naringskode`"
            }
            (Dialect::Ours, Field::Sektor) => {
                "missing; give 1 (STATLIG), 2 (KOMMUNAL), 3 (PRIVAT) or 0 (UKJENT)"
            }
            (Dialect::Brreg, Field::Sektor) => {
                "missing; Brønnøysund's underenhet JSON has no sektor: give a default sektor for the upload, or a `sektor` key per object"
            }
            (Dialect::Ours, Field::AntallAnsatte) => {
                "missing; give the number of employees, a whole number >= 0"
            }
            (Dialect::Brreg, Field::AntallAnsatte) => {
                "missing; the underenhet has no antallAnsatte and does not say harRegistrertAntallAnsatte: false"
            }
            _ => "missing",
        }
    }
}

/// Turns [`RawRow`]s into [`Firm`]s, remembering what it has seen (orgnr for duplicates).
#[derive(Debug)]
pub(super) struct Validator<'a> {
    dialect: Dialect,
    options: &'a RegisterOptions,
    /// Read `1,5` as 1.5 (semicolon-separated CSV, as Norwegian Excel writes it).
    pub(super) decimal_comma: bool,
    /// Required columns absent from the CSV header: already reported once at row 0, so not per row.
    pub(super) reported_missing: BTreeSet<Field>,
    /// Each orgnr's first row.
    seen: BTreeMap<Orgnr, usize>,
}

impl<'a> Validator<'a> {
    pub(super) fn new(dialect: Dialect, options: &'a RegisterOptions) -> Validator<'a> {
        Validator {
            dialect,
            options,
            decimal_comma: false,
            reported_missing: BTreeSet::new(),
            seen: BTreeMap::new(),
        }
    }

    /// The firm in `raw`, or `None` after pushing every problem with it to `sink`.
    pub(super) fn firm(&mut self, mut raw: RawRow, sink: &mut Sink) -> Option<Firm> {
        let row = raw.row;
        let before = sink.total;

        let orgnr = self.orgnr(&raw, sink);
        let navn = raw.cells.remove(&Field::Navn).and_then(|cell| {
            let text = self.text(row, &cell, sink)?;
            crate::domain::check_line(&text, MAX_NAVN_CHARS)
                .map_err(|e| sink.push_cell(row, &cell, format!("the name {e}")))
                .ok()?;
            Some(text)
        });
        let (fylke, kommunenummer) = self.fylke(&raw, sink);
        let naeringskode = self
            .required(&raw, Field::Naringskode, sink)
            .and_then(|cell| {
                let text = self.text(row, cell, sink)?;
                text.parse::<Naeringskode>()
                    .map_err(|e| sink.push_cell(row, cell, e.to_string()))
                    .ok()
            });
        let sektor = self.sektor(&raw, sink);
        let antall_ansatte = self
            .required(&raw, Field::AntallAnsatte, sink)
            .and_then(|cell| {
                count(&cell.raw)
                    .map_err(|reason| sink.push_cell(row, cell, reason))
                    .ok()
            });
        let overordnet_enhet = raw
            .cells
            .get(&Field::OverordnetEnhet)
            .map(|cell| self.parse_orgnr(row, cell, sink));
        let villig = raw.cells.get(&Field::Villig).map(|cell| {
            boolean(&cell.raw)
                .map_err(|reason| sink.push_cell(row, cell, reason))
                .ok()
        });
        let baseline = self.baseline(&raw, sink);
        let covariates = self.covariates(&raw, sink);

        if sink.total != before {
            return None;
        }
        Some(Firm {
            orgnr: orgnr?,
            navn,
            fylke: fylke?,
            kommunenummer,
            naeringskode: naeringskode?,
            sektor: sektor?,
            antall_ansatte: antall_ansatte?,
            overordnet_enhet: overordnet_enhet.flatten(),
            villig: villig.flatten(),
            baseline,
            covariates,
        })
    }

    /// The cell for a required field, or `None` after reporting it missing (unless the header already did).
    fn required<'r>(&self, raw: &'r RawRow, field: Field, sink: &mut Sink) -> Option<&'r Cell> {
        let cell = raw.cells.get(&field);
        if cell.is_none() && !self.reported_missing.contains(&field) {
            sink.push(
                raw.row,
                self.dialect.name(field),
                "",
                self.dialect.missing_reason(field),
            );
        }
        cell
    }

    /// The value as text: numbers are written out (a JSON `974760673` is the orgnr "974760673").
    fn text(&self, row: usize, cell: &Cell, sink: &mut Sink) -> Option<String> {
        match &cell.raw {
            Raw::Text(s) => Some(s.clone()),
            Raw::Number(n) => Some(n.to_string()),
            other => {
                sink.push_cell(
                    row,
                    cell,
                    format!("expected text or a number, got {}", other.kind()),
                );
                None
            }
        }
    }

    fn parse_orgnr(&self, row: usize, cell: &Cell, sink: &mut Sink) -> Option<Orgnr> {
        let text = self.text(row, cell, sink)?;
        text.parse::<Orgnr>()
            .map_err(|e| sink.push_cell(row, cell, e.to_string()))
            .ok()
    }

    /// The row's orgnr, reporting a repeat of an earlier row's on this (the later) row.
    fn orgnr(&mut self, raw: &RawRow, sink: &mut Sink) -> Option<Orgnr> {
        let cell = self.required(raw, Field::Orgnr, sink)?;
        let orgnr = self.parse_orgnr(raw.row, cell, sink)?;
        if let Some(first) = self.seen.get(&orgnr) {
            sink.push_cell(
                raw.row,
                cell,
                format!(
                    "duplicate: orgnr {orgnr} is already in row {first}; each virksomhet may appear only once"
                ),
            );
            return None;
        }
        self.seen.insert(orgnr, raw.row);
        Some(orgnr)
    }

    /// The fylke (from `fylke`, else derived from `kommunenummer`) and the kommunenummer, checking that
    /// the two agree when both are given.
    fn fylke(&self, raw: &RawRow, sink: &mut Sink) -> (Option<FylkeCode>, Option<String>) {
        let row = raw.row;
        let fylke_cell = raw.cells.get(&Field::Fylke);
        let kommune_cell = raw.cells.get(&Field::Kommunenummer);

        let fylke = fylke_cell.and_then(|cell| {
            let text = self.text(row, cell, sink)?;
            text.parse::<FylkeCode>()
                .map_err(|e| sink.push_cell(row, cell, e.to_string()))
                .ok()
        });
        let kommune = kommune_cell.and_then(|cell| {
            let text = self.text(row, cell, sink)?;
            if text.len() != 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
                sink.push_cell(
                    row,
                    cell,
                    format!(
                        "`{}` is not a kommunenummer; expected 4 digits with the leading zero, e.g. 0301 (Oslo) or 4601 (Bergen)",
                        truncate(&text)
                    ),
                );
                return None;
            }
            let prefix = text.get(..2).unwrap_or_default();
            match prefix.parse::<FylkeCode>() {
                Ok(code) => Some((text, code)),
                Err(_) => {
                    sink.push_cell(
                        row,
                        cell,
                        format!(
                            "kommunenummer `{text}` starts with `{prefix}`, which is not a fylke in the 2024 numbering (03, 11, 15, 18, 31, 32, 33, 34, 39, 40, 42, 46, 50, 55, 56); give the kommune's number from 2024 or later"
                        ),
                    );
                    None
                }
            }
        });

        match (fylke_cell, fylke, kommune) {
            (_, Some(fylke), Some((kommune, derived))) => {
                if fylke == derived {
                    (Some(fylke), Some(kommune))
                } else {
                    if let Some(cell) = fylke_cell {
                        sink.push_cell(
                            row,
                            cell,
                            format!(
                                "fylke {fylke} ({}) disagrees with kommunenummer {kommune}, which is in fylke {derived} ({}); correct one of them",
                                fylke.name(),
                                derived.name()
                            ),
                        );
                    }
                    (None, None)
                }
            }
            (_, Some(fylke), None) => (Some(fylke), None),
            (None, None, Some((kommune, derived))) => (Some(derived), Some(kommune)),
            (Some(_), None, _) => (None, None), // the bad fylke is already reported
            (None, None, None) => {
                if kommune_cell.is_none() && !self.reported_missing.contains(&Field::Fylke) {
                    sink.push(
                        row,
                        self.dialect.name(Field::Fylke),
                        "",
                        self.dialect.missing_reason(Field::Fylke),
                    );
                }
                (None, None)
            }
        }
    }

    fn sektor(&self, raw: &RawRow, sink: &mut Sink) -> Option<Sektor> {
        if self.dialect == Dialect::Brreg
            && !raw.cells.contains_key(&Field::Sektor)
            && let Some(sektor) = self.options.default_sektor
        {
            return Some(sektor);
        }
        let cell = self.required(raw, Field::Sektor, sink)?;
        let text = self.text(raw.row, cell, sink)?;
        text.parse::<Sektor>()
            .map_err(|e| sink.push_cell(raw.row, cell, e.to_string()))
            .ok()
    }

    /// `tapte_dagsverk` and `mulige_dagsverk`: both or neither, 0 <= tapte <= mulige, mulige > 0.
    fn baseline(&self, raw: &RawRow, sink: &mut Sink) -> Option<BaselineDagsverk> {
        let row = raw.row;
        let tapte_cell = raw.cells.get(&Field::TapteDagsverk);
        let mulige_cell = raw.cells.get(&Field::MuligeDagsverk);
        let (tapte_cell, mulige_cell) = match (tapte_cell, mulige_cell) {
            (None, None) => return None,
            (Some(tapte), Some(mulige)) => (tapte, mulige),
            (Some(given), None) | (None, Some(given)) => {
                let other = if given.name == Field::TapteDagsverk.canonical() {
                    Field::MuligeDagsverk
                } else {
                    Field::TapteDagsverk
                };
                sink.push(
                    row,
                    other.canonical(),
                    "",
                    format!(
                        "missing; `{}` is given, so `{}` is needed too (give both or neither)",
                        given.name,
                        other.canonical()
                    ),
                );
                return None;
            }
        };
        let tapte = self.number(row, tapte_cell, sink).and_then(|tapte| {
            if tapte < 0.0 {
                sink.push_cell(row, tapte_cell, "tapte dagsverk cannot be negative");
                None
            } else if tapte > MAX_DAGSVERK {
                sink.push_cell(row, tapte_cell, too_many_dagsverk());
                None
            } else {
                Some(tapte)
            }
        });
        let mulige = self.number(row, mulige_cell, sink).and_then(|mulige| {
            if mulige <= 0.0 {
                sink.push_cell(
                    row,
                    mulige_cell,
                    "mulige dagsverk must be greater than 0; a firm with no possible dagsverk has no baseline, so leave both blank",
                );
                None
            } else if mulige > MAX_DAGSVERK {
                sink.push_cell(row, mulige_cell, too_many_dagsverk());
                None
            } else {
                Some(mulige)
            }
        });
        let (tapte, mulige) = (tapte?, mulige?);
        if tapte > mulige {
            sink.push_cell(
                row,
                tapte_cell,
                format!(
                    "tapte dagsverk ({tapte}) exceed mulige dagsverk ({mulige}); check that the columns are not swapped"
                ),
            );
            return None;
        }
        Some(BaselineDagsverk { tapte, mulige })
    }

    fn covariates(&self, raw: &RawRow, sink: &mut Sink) -> BTreeMap<String, f64> {
        raw.covariates
            .iter()
            .filter_map(|cell| {
                if let Err(e) = crate::domain::check_line(&cell.name, MAX_COVARIATE_NAME_CHARS) {
                    sink.push(
                        raw.row,
                        &cell.name,
                        &cell.raw.shown(),
                        format!("the covariate's name {e}"),
                    );
                    return None;
                }
                let value = self.number(raw.row, cell, sink)?;
                if value.abs() > MAX_COVARIATE {
                    sink.push_cell(
                        raw.row,
                        cell,
                        format!(
                            "a covariate must lie between -{MAX_COVARIATE:e} and {MAX_COVARIATE:e}; rescale it (e.g. to thousands) or check the column"
                        ),
                    );
                    return None;
                }
                Some((cell.name.clone(), value))
            })
            .collect()
    }

    fn number(&self, row: usize, cell: &Cell, sink: &mut Sink) -> Option<f64> {
        number(&cell.raw, self.decimal_comma)
            .map_err(|reason| sink.push_cell(row, cell, reason))
            .ok()
    }
}

/// A finite number; with `decimal_comma`, `1,5` (one comma, no point) reads as 1.5.
fn number(raw: &Raw, decimal_comma: bool) -> Result<f64, String> {
    let value = match raw {
        Raw::Number(n) => n.as_f64(),
        Raw::Text(s) => {
            let commas = s.matches(',').count();
            let text = if decimal_comma && commas == 1 && !s.contains('.') {
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
        None => Err(if decimal_comma {
            "not a number; write e.g. 12.5 or 12,5".to_owned()
        } else {
            "not a number; write e.g. 12.5 (decimal point)".to_owned()
        }),
    }
}

fn too_many_dagsverk() -> String {
    format!(
        "more than {MAX_DAGSVERK:e} dagsverk in one firm's baseline; check the column and its unit"
    )
}

/// A whole number from 0 to [`MAX_EMPLOYEES`]; `12.0` is accepted as 12.
fn count(raw: &Raw) -> Result<u32, String> {
    let n = count_u32(raw)?;
    if n > MAX_EMPLOYEES {
        return Err(too_many());
    }
    Ok(n)
}

/// A whole number >= 0 that fits in `u32`; `12.0` is accepted as 12.
fn count_u32(raw: &Raw) -> Result<u32, String> {
    const EXPECTED: &str = "expected the number of employees, a whole number >= 0";
    let value = match raw {
        Raw::Number(n) => match n.as_u64() {
            Some(u) => return u32::try_from(u).map_err(|_| too_many()),
            None => n.as_f64(),
        },
        Raw::Text(s) => match s.parse::<u64>() {
            Ok(u) => return u32::try_from(u).map_err(|_| too_many()),
            Err(_) => s.parse::<f64>().ok(),
        },
        other => return Err(format!("{EXPECTED}, got {}", other.kind())),
    };
    match value {
        Some(v) if v.is_finite() && v < 0.0 => Err(format!("{EXPECTED}; it cannot be negative")),
        Some(v) if v.is_finite() && v.fract() != 0.0 => {
            Err(format!("{EXPECTED}; it has a fractional part"))
        }
        Some(v) if v.is_finite() && v <= f64::from(u32::MAX) => Ok(v as u32),
        Some(v) if v.is_finite() => Err(too_many()),
        _ => Err(EXPECTED.to_owned()),
    }
}

fn too_many() -> String {
    format!("too many employees (more than {MAX_EMPLOYEES}); check the column")
}

/// `true`/`false`, also written `ja`/`nei` (any case).
fn boolean(raw: &Raw) -> Result<bool, String> {
    const EXPECTED: &str = "expected true or false (also ja or nei)";
    match raw {
        Raw::Bool(b) => Ok(*b),
        Raw::Text(s) => match s.to_lowercase().as_str() {
            "true" | "ja" => Ok(true),
            "false" | "nei" => Ok(false),
            _ => Err(EXPECTED.to_owned()),
        },
        other => Err(format!("{EXPECTED}, got {}", other.kind())),
    }
}
