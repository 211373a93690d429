//! The firm register (enrollment): one row per virksomhet (underenhet), read from CSV, JSON / NDJSON in
//! our own keys, or Brønnøysund's underenhet JSON (`docs/data-formats.md` §1).
//!
//! Pure: bytes in, [`Firm`]s or every problem out. Nothing is dropped silently: each invalid value is a
//! [`RowError`] naming the row, the field, the value and what to do about it, and all of them are
//! collected (the first [`MAX_STORED_ERRORS`] are kept, the total is counted) before the upload is refused.
//!
//! # Examples
//! ```
//! use ia_rct::register::{RegisterOptions, detect_format, parse_register};
//! let csv = "orgnr;fylke;naringskode;sektor;antall_ansatte\n974760673;18;84.110;1;445\n";
//! let format = detect_format(csv.as_bytes());
//! let firms = parse_register(csv.as_bytes(), format, &RegisterOptions::default()).unwrap();
//! assert_eq!(firms[0].fylke.name(), "Nordland");
//! ```

mod brreg;
mod csv_reader;
mod json_reader;
mod row;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{FylkeCode, Naeringskode, Orgnr, Sektor};

use row::{Dialect, Sink, Validator};

/// How many [`RowError`]s a [`RegisterErrors`] keeps; the rest are only counted.
pub const MAX_STORED_ERRORS: usize = 100;

/// Longest `navn`, in characters. Brønnøysund's names are at most 180 characters.
pub const MAX_NAVN_CHARS: usize = 300;

/// The most employees accepted for one virksomhet (`antall_ansatte`): Norway's largest employers
/// have some tens of thousands in one unit. Also keeps every value inside an `INTEGER` column.
pub const MAX_EMPLOYEES: u32 = 1_000_000;

/// The largest covariate (`x_*`) accepted, in absolute value.
pub const MAX_COVARIATE: f64 = 1e9;

/// Longest covariate column name (`x_*`), in characters.
pub const MAX_COVARIATE_NAME_CHARS: usize = 64;

/// The most baseline dagsverk (`tapte_dagsverk`, `mulige_dagsverk`) accepted for one firm: as for
/// one quarter of NAV's statistics ([`crate::statistics::MAX_DAGSVERK`]), over a window of up to
/// 40 quarters.
pub const MAX_DAGSVERK: f64 = 4e10;

/// One virksomhet (underenhet) as enrolled (`docs/data-formats.md` §1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firm {
    /// The underenhet's organisation number.
    pub orgnr: Orgnr,
    /// Name, if given (blank is `None`).
    pub navn: Option<String>,
    /// County: from `fylke`, else the first two digits of `kommunenummer`.
    pub fylke: FylkeCode,
    /// Municipality number, exactly 4 digits when present.
    pub kommunenummer: Option<String>,
    /// 5-digit næringskode.
    pub naeringskode: Naeringskode,
    /// NAV's sector.
    pub sektor: Sektor,
    /// Number of employees.
    pub antall_ansatte: u32,
    /// Parent organisation number: the cluster for cluster randomization.
    pub overordnet_enhet: Option<Orgnr>,
    /// Whether the firm agreed to take part (design B); `None` when not given.
    pub villig: Option<bool>,
    /// Baseline-window totals given in the file (optional columns `tapte_dagsverk`, `mulige_dagsverk`,
    /// both or neither; tapte >= 0, mulige > 0, tapte <= mulige) — an extension of docs/data-formats.md §1 for
    /// registers that carry their own baseline when no NAV statistics are ingested.
    pub baseline: Option<BaselineDagsverk>,
    /// Numeric `x_*` columns, keyed by the full column name (`x_alder`); a blank cell or JSON `null` is
    /// left out rather than stored.
    pub covariates: BTreeMap<String, f64>,
}

/// Lost and possible dagsverk over the baseline window, as given in the register file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BaselineDagsverk {
    /// Tapte dagsverk (>= 0).
    pub tapte: f64,
    /// Mulige dagsverk (> 0, >= `tapte`).
    pub mulige: f64,
}

/// The shape of a register upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegisterFormat {
    /// UTF-8 CSV, comma or semicolon separated, with a header row (optional BOM).
    Csv,
    /// Our §1 keys as a JSON array of objects, or one object per line (NDJSON).
    Json,
    /// Brønnøysund Enhetsregisteret underenhet objects: the bulk file's top-level array, the API's
    /// `{"_embedded": {"underenheter": [...]}}` page, or one object per line.
    BrregJson,
}

/// Per-upload choices that the file itself cannot carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegisterOptions {
    /// The sektor of every Brønnøysund underenhet without a `sektor` key (their JSON has none;
    /// `docs/data-formats.md` §1: "given per upload"). Not used for CSV or our JSON, where `sektor` is required.
    pub default_sektor: Option<Sektor>,
}

/// One invalid value, or a problem with the file as a whole.
///
/// `row` is the 1-based data row: for CSV the data line's offset from the header line (the first line
/// after the header is row 1; a blank line still counts, so row N is line N + 1 when the header is on
/// line 1); for a JSON array the element's position; for NDJSON the line number. Row 0 is the header or
/// the file as a whole. `field` is the column or key as written in the file (empty when the problem is
/// the whole row or file) and `value` the offending value (cut after 120 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowError {
    /// 1-based data row; 0 for the header or the whole file.
    pub row: usize,
    /// Column or key as written in the file; empty for a whole-row or whole-file problem.
    pub field: String,
    /// The offending value as written; empty when the value is missing.
    pub value: String,
    /// What is wrong and what to do about it.
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.row == 0 {
            f.write_str("file")?;
        } else {
            write!(f, "row {}", self.row)?;
        }
        if !self.field.is_empty() {
            write!(f, ", {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for RowError {}

/// Why a register was refused: every problem found, the first [`MAX_STORED_ERRORS`] of them listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisterErrors {
    /// The first [`MAX_STORED_ERRORS`] problems, in the order found (header problems first).
    pub errors: Vec<RowError>,
    /// How many problems there are in all (`>= errors.len()`).
    pub total: usize,
}

impl fmt::Display for RegisterErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.total == 1 { "" } else { "s" };
        write!(f, "{} problem{plural} in the register", self.total)?;
        if let Some(first) = self.errors.first() {
            write!(f, "; first: {first}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RegisterErrors {}

/// The field and reason for a CSV row whose field count differs from the header's: for a short row the
/// first missing column (the one after the last complete field), for a long row the header's last
/// column, after which the extra fields begin. `names` are the header's names as written (an unnamed
/// column is named by its position).
///
/// # Examples
/// ```
/// use ia_rct::register::field_count_problem;
/// let header = ["orgnr", "status", "dato"];
/// let (field, reason) = field_count_problem(2, &header, b',');
/// assert_eq!(field, "dato");
/// assert!(reason.contains("has 2 fields but the header has 3"));
/// let (field, reason) = field_count_problem(5, &header, b';');
/// assert_eq!(field, "dato");
/// assert!(reason.contains("2 more than the header"));
/// ```
pub fn field_count_problem<S: AsRef<str>>(
    fields: usize,
    names: &[S],
    delimiter: u8,
) -> (String, String) {
    let expected = names.len();
    let name = |index: usize| -> String {
        match names.get(index).map(|n| n.as_ref().trim()) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => format!("column {}", index + 1),
        }
    };
    let separator = char::from(delimiter);
    if fields < expected {
        let missing = expected - fields;
        let first = name(fields);
        let rest = if missing == 1 {
            String::new()
        } else {
            format!(" and the {} column(s) after it", missing - 1)
        };
        (
            first.clone(),
            format!(
                "this row has {fields} fields but the header has {expected}: it ends before `{first}`{rest}; the row looks truncated, or a separator (`{separator}`) or quote is missing"
            ),
        )
    } else {
        let last = name(expected.saturating_sub(1));
        (
            last.clone(),
            format!(
                "this row has {fields} fields but the header has {expected}: {} more than the header, after its last column `{last}`; check the separator (`{separator}`) and quoting (a value holding `{separator}` must be in \"quotes\")",
                fields - expected
            ),
        )
    }
}

/// Where a JSON text stopped parsing, for an error that names the row and field: the 1-based element
/// of a top-level array (or 1 for a single object) and the path inside it (`beliggenhetsadresse.kommunenummer`,
/// `x[2]`), empty when parsing stopped between keys. `None` if the text parses.
pub(crate) fn json_error_location(text: &str) -> Option<(usize, String, serde_json::Error)> {
    use serde_path_to_error::Segment;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let error = match serde_path_to_error::deserialize::<_, serde_json::Value>(&mut deserializer) {
        Ok(_) => match deserializer.end() {
            Ok(()) => return None,
            Err(e) => return Some((0, String::new(), e)),
        },
        Err(e) => e,
    };
    let path = error.path().clone();
    let mut segments = path.iter().peekable();
    let top_level_array = text.trim_start().starts_with('[');
    let row = if top_level_array {
        match segments.next() {
            Some(Segment::Seq { index }) => index + 1,
            _ => 0,
        }
    } else {
        1
    };
    let mut field = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => field.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(key);
            }
            Segment::Enum { variant } => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    Some((row, field, error.into_inner()))
}

/// Guesses the format of an upload from its first bytes.
///
/// JSON if the first byte after any BOM and whitespace is `[` or `{`; of that, [`RegisterFormat::BrregJson`]
/// if the first object has `organisasjonsnummer` (or the input is an API page with `_embedded`). Anything
/// else, including empty input, is [`RegisterFormat::Csv`].
///
/// # Examples
/// ```
/// use ia_rct::register::{RegisterFormat, detect_format};
/// assert_eq!(detect_format(b"orgnr,fylke\n"), RegisterFormat::Csv);
/// assert_eq!(detect_format(br#"[{"orgnr":"974760673"}]"#), RegisterFormat::Json);
/// assert_eq!(detect_format(br#"[{"organisasjonsnummer":"974760673"}]"#), RegisterFormat::BrregJson);
/// ```
pub fn detect_format(input: &[u8]) -> RegisterFormat {
    let body = strip_bom(input).trim_ascii_start();
    match body.first() {
        Some(b'[' | b'{') => {
            if json_reader::looks_like_brreg(body) {
                RegisterFormat::BrregJson
            } else {
                RegisterFormat::Json
            }
        }
        _ => RegisterFormat::Csv,
    }
}

/// Reads a firm register.
///
/// # Errors
/// Returns every problem found ([`RegisterErrors`]) if any value is invalid, a required column or value
/// is missing, a column is unknown, an orgnr appears twice, the input is not UTF-8 or not well-formed, or
/// the register has no firms. The register is accepted whole or not at all.
pub fn parse_register(
    input: &[u8],
    format: RegisterFormat,
    options: &RegisterOptions,
) -> Result<Vec<Firm>, RegisterErrors> {
    let mut sink = Sink::default();
    let firms = read(input, format, options, &mut sink);
    if sink.total == 0 && firms.is_empty() {
        sink.push(
            0,
            "",
            "",
            "the register has no firms; expected at least one row after the header (CSV) or one object (JSON)",
        );
    }
    if sink.total == 0 {
        Ok(firms)
    } else {
        Err(sink.into_errors())
    }
}

fn read(
    input: &[u8],
    format: RegisterFormat,
    options: &RegisterOptions,
    sink: &mut Sink,
) -> Vec<Firm> {
    let body = strip_bom(input);
    if body.trim_ascii().is_empty() {
        sink.push(
            0,
            "",
            "",
            "the upload is empty; expected a register with a header row and at least one firm",
        );
        return Vec::new();
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
            return Vec::new();
        }
    };
    let (rows, mut validator) = match format {
        RegisterFormat::Csv => {
            let read = csv_reader::read(text, sink);
            let mut validator = Validator::new(Dialect::Ours, options);
            validator.decimal_comma = read.decimal_comma;
            validator.reported_missing = read.missing_columns;
            (read.rows, validator)
        }
        RegisterFormat::Json => (
            json_reader::read_ours(text, sink),
            Validator::new(Dialect::Ours, options),
        ),
        RegisterFormat::BrregJson => (
            brreg::read(text, sink),
            Validator::new(Dialect::Brreg, options),
        ),
    };
    rows.into_iter()
        .filter_map(|raw| validator.firm(raw, sink))
        .collect()
}

fn strip_bom(input: &[u8]) -> &[u8] {
    input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input)
}
