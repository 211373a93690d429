//! NAV's firm-level sickness statistics (`docs/data-formats.md` §2), read one row at a time.
//!
//! Four shapes, all NAV's own (`docs/nav-data.md` §1.2-§1.3): the data warehouse's
//! `agg_ia_sykefravar__virksomhet` view as CSV, the bucket's `virksomhet.json`, and the matching
//! metadata (`…__virksomhet_metadata` CSV, `virksomhet_metadata.json`). JSON may be an array or one object
//! per line (NDJSON). Pure: bytes in, rows out, no database.
//!
//! Streaming with bounded memory: [`read_stats`] and [`read_metadata`] pull from any [`Read`] and
//! hold one row (at most [`MAX_ROW_BYTES`]) at a time, so a national quarter (~250,000 rows) or a
//! 12-million-row history never sits in memory. Every problem is a [`RowError`] (the same type the
//! firm register reports) naming the row, the field, the value and what to do; a row with several
//! problems yields several errors. A problem that makes the rest unreadable (a truncated array, a bad
//! header) is the last item.
//!
//! # Examples
//! ```
//! use ia_rct::statistics::{detect, read_stats, StatsFormat};
//! let json = r#"[{"årstall":2024,"kvartal":2,"orgnr":"974760673","tapteDagsverk":"20.23",
//!                 "muligeDagsverk":"77.8716","antallPersoner":"40"}]"#;
//! assert_eq!(detect(json.as_bytes()), StatsFormat::VirksomhetJson);
//! let rows: Vec<_> = read_stats(json.as_bytes(), StatsFormat::VirksomhetJson).collect();
//! let row = rows[0].as_ref().unwrap();
//! assert_eq!(row.quarter.to_string(), "2024K2");
//! assert_eq!(row.tapte_dagsverk, 20.23);
//! ```

mod baseline;
mod csv_rows;
mod fields;
mod json;
mod parallel;
mod percent;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufReader, Read};
use std::iter::FusedIterator;

use crate::domain::{Orgnr, Quarter, Sektor};
pub use crate::register::RowError;

pub use baseline::{StatsErrors, baseline_sums};
pub use parallel::{StatRows, read_stats_parallel};
pub use percent::{display_percent, dvh_percent, percent, round_dagsverk};

use fields::{Kind, RawRow};

/// NAV masks a firm-quarter with fewer persons than this (`MIN_ANTALL_PERS_FOR_AT_STATISTIKKEN_IKKE_ER_PERSONOPPLYSNINGER`,
/// `docs/nav-data.md` §2): nothing shown outside the directorate may reveal such a cell.
pub const MASKING_MIN_PERSONS: u32 = 5;

/// The most persons accepted in one virksomhet and quarter (`antpers` / `antallPersoner`). Norway's
/// largest employers have some tens of thousands in one unit; the bound also keeps every accepted value
/// inside the database's `INTEGER` column (2^31 - 1) on both backends.
pub const MAX_PERSONS: u32 = 1_000_000;

/// The most dagsverk (tapte, mulige, graded or per varighet) accepted in one virksomhet and quarter:
/// [`MAX_PERSONS`] working every day of a quarter is about 6.5e7, so 1e9 leaves room and refuses
/// values that are off by orders of magnitude (or `1e300`).
pub const MAX_DAGSVERK: f64 = 1e9;

/// The longest row (JSON element, NDJSON line or CSV record) read, in bytes. NAV's rows are a few hundred.
pub const MAX_ROW_BYTES: usize = 1024 * 1024;

/// The varighet (duration) classes of `tapteDagsverkPerVarighet`: `A` 1-7 days, `B` 8-16 days, `C` 17
/// days-8 weeks, `D` 8-20 weeks, `E` 20-39 weeks, `F` more than 39 weeks, `X` total
/// (`docs/nav-data.md` §1.8). The DVH view has columns for A-F only.
pub const VARIGHETER: [char; 7] = ['A', 'B', 'C', 'D', 'E', 'F', 'X'];

/// Longest `value` kept in a [`RowError`], in characters (as the register does).
const MAX_VALUE_CHARS: usize = 120;

/// One virksomhet and quarter of NAV's sickness statistics, with the raw dagsverk at full precision.
#[derive(Debug, Clone, PartialEq)]
pub struct StatRow {
    /// The unit's organisation number (an underenhet for `rectype` 2).
    pub orgnr: Orgnr,
    /// `årstall` + `kvartal`.
    pub quarter: Quarter,
    /// `tapteDagsverk` / `taptedv`: lost workdays, >= 0.
    pub tapte_dagsverk: f64,
    /// `muligeDagsverk` / `muligedv`: possible workdays, > 0 and >= `tapte_dagsverk`.
    pub mulige_dagsverk: f64,
    /// `antallPersoner` / `antpers`.
    pub antall_personer: u32,
    /// `tapteDagsverkGradert` / `taptedv_gs`: lost workdays under graded sick leave, if given.
    pub tapte_dagsverk_gradert: Option<f64>,
    /// `prosent` as NAV published it (rounded by DVH from the raw dagsverk), if given. Kept for
    /// comparison only; compute with [`percent`].
    pub prosent_published: Option<f64>,
    /// `rectype`: "1" overordnet enhet, "2" underenhet, "3" organisasjonsledd (`docs/nav-data.md` §4.2).
    pub rectype: Option<String>,
    /// Tapte dagsverk per varighet class (keys from [`VARIGHETER`]); only the classes given.
    pub varighet: BTreeMap<char, f64>,
}

impl StatRow {
    /// `100 * tapte / mulige`, unrounded ([`percent`]).
    pub fn percent(&self) -> f64 {
        percent(self.tapte_dagsverk, self.mulige_dagsverk)
    }

    /// Whether NAV would mask this quarter (fewer than [`MASKING_MIN_PERSONS`] persons).
    pub fn is_masked(&self) -> bool {
        self.antall_personer < MASKING_MIN_PERSONS
    }
}

/// One virksomhet and quarter of NAV's metadata: sector and primary næring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataRow {
    /// The unit's organisation number.
    pub orgnr: Orgnr,
    /// `årstall` + `kvartal`.
    pub quarter: Quarter,
    /// `sektor`: NAV's code 0-3 or name.
    pub sektor: Sektor,
    /// `primærnæring` / `primar_naring`: 2 digits, if given.
    pub primaernaring: Option<String>,
    /// `primærnæringskode` / `primar_naring_kode`: 5 digits without the dot (DVH's form), if given.
    pub primaernaringskode: Option<String>,
    /// `rectype`, as for [`StatRow::rectype`].
    pub rectype: Option<String>,
}

/// The shape of a statistics upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatsFormat {
    /// CSV of the DVH view `agg_ia_sykefravar__virksomhet` (comma or semicolon, optional BOM).
    DvhCsv,
    /// NAV's `virksomhet.json` rows: an array or NDJSON.
    VirksomhetJson,
    /// CSV of the DVH view `agg_ia_sykefravar__virksomhet_metadata`.
    MetadataCsv,
    /// NAV's `virksomhet_metadata.json` rows: an array or NDJSON.
    MetadataJson,
}

impl StatsFormat {
    fn kind(self) -> Kind {
        match self {
            StatsFormat::DvhCsv | StatsFormat::VirksomhetJson => Kind::Stats,
            StatsFormat::MetadataCsv | StatsFormat::MetadataJson => Kind::Metadata,
        }
    }
}

/// Guesses the format from the first bytes of an upload (a few KiB is plenty).
///
/// JSON if the first byte after any BOM and whitespace is `[` or `{`, else CSV. Metadata if the bytes
/// name a `sektor` key or column and no tapte dagsverk; otherwise statistics, whose reader then reports
/// what does not fit.
///
/// # Examples
/// ```
/// use ia_rct::statistics::{detect, StatsFormat};
/// assert_eq!(detect(b"orgnr;arstall;kvartal;taptedv;muligedv;antpers\n"), StatsFormat::DvhCsv);
/// assert_eq!(detect(br#"[{"orgnr":"974760673","sektor":"1"}]"#), StatsFormat::MetadataJson);
/// ```
pub fn detect(first_bytes: &[u8]) -> StatsFormat {
    let body = first_bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(first_bytes)
        .trim_ascii_start();
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    if matches!(body.first(), Some(b'[' | b'{')) {
        let metadata = contains(b"\"sektor\"")
            && !contains(b"\"tapteDagsverk\"")
            && !contains(b"\"muligeDagsverk\"");
        return if metadata {
            StatsFormat::MetadataJson
        } else {
            StatsFormat::VirksomhetJson
        };
    }
    let header = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let header = String::from_utf8_lossy(header).to_lowercase();
    let columns: Vec<&str> = header
        .split([',', ';'])
        .map(|c| c.trim().trim_matches('"').trim())
        .collect();
    if columns.contains(&"sektor") && !columns.contains(&"taptedv") {
        StatsFormat::MetadataCsv
    } else {
        StatsFormat::DvhCsv
    }
}

/// A reader whose first bytes were read by [`sniff`] and are given back first.
pub type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Reads the first few KiB to [`detect`] the format, and gives back a reader that still starts at
/// the beginning.
///
/// # Errors
/// The error of the underlying reader, if reading the first bytes fails.
pub fn sniff<R: Read>(mut reader: R) -> io::Result<(StatsFormat, Sniffed<R>)> {
    let mut head = Vec::new();
    reader.by_ref().take(8 * 1024).read_to_end(&mut head)?;
    Ok((detect(&head), io::Cursor::new(head).chain(reader)))
}

/// Streams [`StatRow`]s from a DVH CSV or `virksomhet.json` upload, one row at a time.
///
/// Rows are 1-based data rows: for CSV the first line after the header is row 1 (blank lines count);
/// for a JSON array the element's position; for NDJSON the line. Row 0 is the header or the whole
/// file. A metadata `format` yields one row-0 error.
///
/// # Examples
/// ```
/// use ia_rct::statistics::{read_stats, StatsFormat};
/// let csv = "orgnr;arstall;kvartal;taptedv;muligedv;antpers\n974760673;2024;2;20.23;77.8716;40\n";
/// let mut rows = read_stats(csv.as_bytes(), StatsFormat::DvhCsv);
/// assert_eq!(rows.next().unwrap().unwrap().mulige_dagsverk, 77.8716);
/// assert!(rows.next().is_none());
/// ```
pub fn read_stats<R: Read>(reader: R, format: StatsFormat) -> Rows<R, StatRow> {
    Rows::new(
        reader,
        format,
        Kind::Stats,
        fields::stat_row,
        Some(fields::stat_row_fast),
    )
}

/// Streams [`MetadataRow`]s from a DVH metadata CSV or `virksomhet_metadata.json` upload; rows are
/// numbered as in [`read_stats`]. A statistics `format` yields one row-0 error.
pub fn read_metadata<R: Read>(reader: R, format: StatsFormat) -> Rows<R, MetadataRow> {
    Rows::new(reader, format, Kind::Metadata, fields::metadata_row, None)
}

/// Where rows come from.
enum Source<R: Read> {
    Csv(csv_rows::CsvRows<R>),
    Json(json::Elements<BufReader<R>>, Kind),
    /// A single problem, then nothing.
    Refused(Option<RowError>),
}

/// The rows of an upload, pulled one at a time: `Ok` for each valid row, one `Err` per problem.
/// Made by [`read_stats`] and [`read_metadata`].
pub struct Rows<R: Read, T> {
    source: Source<R>,
    build: fn(RawRow) -> Result<T, Vec<RowError>>,
    /// A shortcut for plain CSV records (see [`csv_rows::FastCells`]); `build` remains the rule.
    fast: Option<fn(&csv_rows::FastCells<'_>) -> Option<T>>,
    pending: VecDeque<RowError>,
    last_row: usize,
}

impl<R: Read, T> Rows<R, T> {
    fn new(
        reader: R,
        format: StatsFormat,
        kind: Kind,
        build: fn(RawRow) -> Result<T, Vec<RowError>>,
        fast: Option<fn(&csv_rows::FastCells<'_>) -> Option<T>>,
    ) -> Rows<R, T> {
        let source = if format.kind() != kind {
            let reason = match kind {
                Kind::Stats => "this is a metadata format; read it as metadata, not statistics",
                Kind::Metadata => {
                    "this is a statistics format; read it as statistics, not metadata"
                }
            };
            Source::Refused(Some(error(0, "", "", reason)))
        } else {
            match format {
                StatsFormat::DvhCsv | StatsFormat::MetadataCsv => {
                    Source::Csv(csv_rows::CsvRows::new(reader, kind))
                }
                StatsFormat::VirksomhetJson | StatsFormat::MetadataJson => {
                    Source::Json(json::Elements::new(BufReader::new(reader)), kind)
                }
            }
        };
        Rows {
            source,
            build,
            fast,
            pending: VecDeque::new(),
            last_row: 0,
        }
    }

    /// The row number (as in [`RowError::row`]) of the last row or problem yielded; 0 before the first.
    pub fn last_row(&self) -> usize {
        self.last_row
    }

    /// The next row, already built when the CSV fast path took it.
    fn next_raw(&mut self) -> Option<Result<csv_rows::Record<T>, RowError>> {
        match &mut self.source {
            Source::Csv(rows) => rows.next_with(self.fast),
            Source::Json(elements, kind) => {
                let kind = *kind;
                elements.next().map(|e| {
                    e.map(|(row, members)| {
                        csv_rows::Record::Raw(RawRow::from_json(kind, row, members))
                    })
                })
            }
            Source::Refused(error) => error.take().map(Err),
        }
    }
}

impl<R: Read, T> Iterator for Rows<R, T> {
    type Item = Result<T, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.last_row = e.row;
                return Some(Err(e));
            }
            match self.next_raw()? {
                Err(e) => {
                    self.last_row = e.row;
                    return Some(Err(e));
                }
                Ok(csv_rows::Record::Built(row, value)) => {
                    self.last_row = row;
                    return Some(Ok(value));
                }
                Ok(csv_rows::Record::Raw(raw)) => {
                    self.last_row = raw.row;
                    match (self.build)(raw) {
                        Ok(row) => return Some(Ok(row)),
                        Err(errors) => self.pending.extend(errors),
                    }
                }
            }
        }
    }
}

impl<R: Read, T> FusedIterator for Rows<R, T> {}

/// The statistics rows of a DVH CSV upload from a resumed reader ([`csv_rows::CsvRows::resume`]).
fn resumed_stats<R: Read>(rows: csv_rows::CsvRows<R>) -> Rows<R, StatRow> {
    Rows {
        source: Source::Csv(rows),
        build: fields::stat_row,
        fast: Some(fields::stat_row_fast),
        pending: VecDeque::new(),
        last_row: 0,
    }
}

/// A [`RowError`] with `value` cut to [`MAX_VALUE_CHARS`].
fn error(row: usize, field: &str, value: &str, reason: impl Into<String>) -> RowError {
    RowError {
        row,
        field: field.to_owned(),
        value: shown(value),
        reason: reason.into(),
    }
}

/// Cuts `s` after [`MAX_VALUE_CHARS`] characters, marking the cut with `…`.
fn shown(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE_CHARS) {
        Some((end, _)) => format!("{}…", s.get(..end).unwrap_or_default()),
        None => s.to_owned(),
    }
}
