//! Names (DVH columns and NAV's JSON keys) and the one place a row's values become a [`StatRow`] or
//! [`MetadataRow`], so CSV and JSON cannot drift apart in what they accept.

use std::collections::BTreeMap;

use crate::domain::{Naeringskode, Orgnr, Quarter, Sektor};
use crate::register::RowError;

use super::json::Json;
use super::{MetadataRow, StatRow, VARIGHETER, error};

/// Which rows a reader expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Firm-quarter statistics (`agg_ia_sykefravar__virksomhet`, `virksomhet.json`).
    Stats,
    /// Sector and næringskode per firm-quarter (`…__virksomhet_metadata`, `virksomhet_metadata.json`).
    Metadata,
}

/// How a row was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// DVH view columns.
    Csv,
    /// NAV's bucket JSON keys.
    Json,
}

/// A value of `docs/data-formats.md` §2, whatever the file calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Field {
    Orgnr,
    Arstall,
    Kvartal,
    Prosent,
    Tapte,
    Mulige,
    Gradert,
    Antpers,
    Rectype,
    /// Tapte dagsverk of one varighet class (a CSV column, or one entry of the JSON list).
    Varighet(char),
    /// `tapteDagsverkPerVarighet`, the JSON list (expanded into [`Field::Varighet`] cells).
    PerVarighet,
    Sektor,
    Primaernaring,
    Primaernaringskode,
}

/// The varighet classes in the DVH view's pivot (`docs/nav-data.md` §1.2: `varighet_A … varighet_F`).
const DVH_VARIGHETER: [char; 6] = ['A', 'B', 'C', 'D', 'E', 'F'];

impl Field {
    const STATS: [Field; 10] = [
        Field::Orgnr,
        Field::Arstall,
        Field::Kvartal,
        Field::Prosent,
        Field::Tapte,
        Field::Mulige,
        Field::Gradert,
        Field::Antpers,
        Field::Rectype,
        Field::PerVarighet,
    ];
    const METADATA: [Field; 7] = [
        Field::Orgnr,
        Field::Arstall,
        Field::Kvartal,
        Field::Sektor,
        Field::Primaernaring,
        Field::Primaernaringskode,
        Field::Rectype,
    ];

    /// How many [`Field::slot`]s there are.
    pub(super) const SLOTS: usize = 15;

    /// A dense index for the statistics fields of the DVH view (the CSV fast path's cells); `None`
    /// for the JSON list and the metadata fields.
    pub(super) fn slot(self) -> Option<usize> {
        Some(match self {
            Field::Orgnr => 0,
            Field::Arstall => 1,
            Field::Kvartal => 2,
            Field::Prosent => 3,
            Field::Tapte => 4,
            Field::Mulige => 5,
            Field::Gradert => 6,
            Field::Antpers => 7,
            Field::Rectype => 8,
            Field::Varighet(c) => 9 + DVH_VARIGHETER.iter().position(|&d| d == c)?,
            Field::PerVarighet
            | Field::Sektor
            | Field::Primaernaring
            | Field::Primaernaringskode => return None,
        })
    }

    /// The fields of `kind`, with the varighet columns spelled out for CSV.
    fn all(kind: Kind, shape: Shape) -> Vec<Field> {
        match kind {
            Kind::Stats => {
                let mut fields: Vec<Field> = Field::STATS
                    .into_iter()
                    .filter(|f| shape == Shape::Json || *f != Field::PerVarighet)
                    .collect();
                if shape == Shape::Csv {
                    fields.extend(DVH_VARIGHETER.map(Field::Varighet));
                }
                fields
            }
            Kind::Metadata => Field::METADATA.to_vec(),
        }
    }

    /// The fields every row must give.
    pub(super) fn required(kind: Kind) -> &'static [Field] {
        match kind {
            Kind::Stats => &[
                Field::Orgnr,
                Field::Arstall,
                Field::Kvartal,
                Field::Tapte,
                Field::Mulige,
                Field::Antpers,
            ],
            Kind::Metadata => &[Field::Orgnr, Field::Arstall, Field::Kvartal, Field::Sektor],
        }
    }

    /// The name the source uses: DVH view columns (`docs/nav-data.md` §1.2) or bucket JSON keys (§1.3).
    pub(super) fn canonical(self, shape: Shape) -> String {
        let name = match (shape, self) {
            (_, Field::Orgnr) => "orgnr",
            (Shape::Csv, Field::Arstall) => "arstall",
            (Shape::Json, Field::Arstall) => "årstall",
            (_, Field::Kvartal) => "kvartal",
            (_, Field::Prosent) => "prosent",
            (Shape::Csv, Field::Tapte) => "taptedv",
            (Shape::Json, Field::Tapte) => "tapteDagsverk",
            (Shape::Csv, Field::Mulige) => "muligedv",
            (Shape::Json, Field::Mulige) => "muligeDagsverk",
            (Shape::Csv, Field::Gradert) => "taptedv_gs",
            (Shape::Json, Field::Gradert) => "tapteDagsverkGradert",
            (Shape::Csv, Field::Antpers) => "antpers",
            (Shape::Json, Field::Antpers) => "antallPersoner",
            (_, Field::Rectype) => "rectype",
            (Shape::Csv, Field::Varighet(c)) => return format!("varighet_{c}"),
            (Shape::Json, Field::Varighet(_) | Field::PerVarighet) => "tapteDagsverkPerVarighet",
            (Shape::Csv, Field::PerVarighet) => "varighet_A … varighet_F",
            (_, Field::Sektor) => "sektor",
            (Shape::Csv, Field::Primaernaring) => "primar_naring",
            (Shape::Json, Field::Primaernaring) => "primærnæring",
            (Shape::Csv, Field::Primaernaringskode) => "primar_naring_kode",
            (Shape::Json, Field::Primaernaringskode) => "primærnæringskode",
        };
        name.to_owned()
    }

    /// The field for a name in the file. JSON keys match exactly; DVH columns ignore ASCII case, since
    /// Oracle folds unquoted identifiers to upper case and exports write `ORGNR`, `VARIGHET_A`.
    /// `arstall` / `årstall` are the same field in both (`docs/data-formats.md`, "Quarters").
    pub(super) fn from_name(kind: Kind, shape: Shape, name: &str) -> Option<Field> {
        let matches = |candidate: &str| match shape {
            Shape::Json => candidate == name,
            Shape::Csv => candidate.to_lowercase() == name.to_lowercase(),
        };
        if matches("arstall") || matches("årstall") {
            return Some(Field::Arstall);
        }
        Field::all(kind, shape)
            .into_iter()
            .find(|f| matches(&f.canonical(shape)))
    }

    /// A hint for an unknown name: a near miss of a known one (case, `_`, æøå, or the other format's
    /// spelling), or what kind of file the name belongs to.
    pub(super) fn hint(kind: Kind, shape: Shape, name: &str) -> String {
        let normalise = |s: &str| -> String {
            s.trim()
                .to_lowercase()
                .chars()
                .map(|c| match c {
                    'æ' | 'å' => 'a',
                    'ø' => 'o',
                    c => c,
                })
                .filter(|c| !matches!(c, '_' | '-' | ' ' | '.'))
                .collect()
        };
        let wanted = normalise(name);
        let lower = name.trim().to_lowercase();
        for field in Field::all(kind, Shape::Csv)
            .into_iter()
            .chain(Field::all(kind, Shape::Json))
        {
            let names = [field.canonical(Shape::Csv), field.canonical(Shape::Json)];
            if names.iter().any(|n| normalise(n) == wanted) {
                let ours = match (shape, field) {
                    (Shape::Json, Field::Varighet(_)) => Field::PerVarighet.canonical(shape),
                    _ => field.canonical(shape),
                };
                return format!(" (did you mean `{ours}`? names are matched exactly)");
            }
        }
        let other_category = match lower.as_str() {
            "næring" | "naring" => Some("næring.json (statistics per 2-digit næring)"),
            "næringskode" | "naringskode" => Some("næringskode.json (statistics per næringskode)"),
            "bransje" => Some("the derived bransje statistics"),
            "land" => Some("land.json (national statistics)"),
            _ => None,
        };
        if let Some(file) = other_category {
            return format!(
                " (`{name}` marks NAV's {file}, not firm-level rows; upload virksomhet.json or the virksomhet view)"
            );
        }
        match (kind, lower.as_str()) {
            (
                Kind::Stats,
                "sektor"
                | "primærnæring"
                | "primærnæringskode"
                | "primar_naring"
                | "primar_naring_kode",
            ) => {
                return " (this belongs to the virksomhet_metadata rows; upload those as metadata, not as statistics)".to_owned();
            }
            (Kind::Metadata, _)
                if Field::all(Kind::Stats, Shape::Csv)
                    .into_iter()
                    .chain(Field::all(Kind::Stats, Shape::Json))
                    .any(|f| {
                        normalise(&f.canonical(Shape::Csv)) == wanted
                            || normalise(&f.canonical(Shape::Json)) == wanted
                    }) =>
            {
                return " (this belongs to the sickness statistics rows; upload those as statistics, not as metadata)".to_owned();
            }
            _ => {}
        }
        if shape == Shape::Csv {
            if let Some(letter) = lower.strip_prefix("varighet_") {
                return format!(
                    " (the DVH view has varighet_A … varighet_F only, not `{letter}`; docs/nav-data.md §1.8)"
                );
            }
            if matches!(
                lower.as_str(),
                "sftype"
                    | "varighet"
                    | "naering_kode"
                    | "alder"
                    | "kjonn"
                    | "fylkbo"
                    | "fylkarb"
                    | "storrelse"
            ) {
                return " (this is the legacy DVH layout agg_ia_sykefravar_v with two rows per statistic, which is not read; export the view agg_ia_sykefravar__virksomhet)".to_owned();
            }
        }
        String::new()
    }

    /// The accepted names, for "unknown column/key" messages.
    pub(super) fn expected(kind: Kind, shape: Shape) -> String {
        let names: Vec<String> = Field::all(kind, shape)
            .into_iter()
            .map(|f| f.canonical(shape))
            .collect();
        let what = match shape {
            Shape::Csv => "columns",
            Shape::Json => "keys",
        };
        format!("expected {what} {}", names.join(", "))
    }
}

/// A named value in a row.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cell {
    /// The column or key as written in the file (a path for varighet entries).
    pub(super) name: String,
    pub(super) value: Json,
}

impl Cell {
    fn error(&self, row: usize, reason: impl Into<String>) -> RowError {
        error(row, &self.name, &self.value.shown(), reason)
    }
}

/// One row from any reader: the fields it gives (blank ones and `null` left out), plus the problems
/// already found while reading it (unknown or repeated names).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawRow {
    pub(super) row: usize,
    pub(super) shape: Shape,
    pub(super) cells: BTreeMap<Field, Cell>,
    pub(super) errors: Vec<RowError>,
}

impl RawRow {
    pub(super) fn new(row: usize, shape: Shape) -> RawRow {
        RawRow {
            row,
            shape,
            cells: BTreeMap::new(),
            errors: Vec::new(),
        }
    }

    /// Adds a cell unless it is blank; a field given twice is an error.
    pub(super) fn insert(&mut self, field: Field, cell: Cell) {
        if is_blank(&cell.value) {
            return;
        }
        if let Some(first) = self.cells.get(&field) {
            let reason = if first.name == cell.name {
                format!("`{}` is given twice; keep one", cell.name)
            } else {
                format!(
                    "`{}` and `{}` are the same field; keep one",
                    first.name, cell.name
                )
            };
            self.errors.push(cell.error(self.row, reason));
        } else {
            self.cells.insert(field, cell);
        }
    }

    /// A JSON object's members.
    pub(super) fn from_json(kind: Kind, row: usize, members: Vec<(String, Json)>) -> RawRow {
        let mut raw = RawRow::new(row, Shape::Json);
        for (key, value) in members {
            match Field::from_name(kind, Shape::Json, &key) {
                Some(Field::PerVarighet) => raw.per_varighet(&key, value),
                Some(field) => raw.insert(field, Cell { name: key, value }),
                None => {
                    let reason = format!(
                        "unknown key `{key}`{}; {}",
                        Field::hint(kind, Shape::Json, &key),
                        Field::expected(kind, Shape::Json)
                    );
                    raw.errors.push(error(row, &key, &value.shown(), reason));
                }
            }
        }
        raw
    }

    /// `tapteDagsverkPerVarighet: [{"varighet": "A", "tapteDagsverk": 12.1527}, ...]`; an entry without
    /// `tapteDagsverk` (or with `null`) is left out, as NAV's serializer drops it (`docs/nav-data.md` §1.3).
    fn per_varighet(&mut self, key: &str, value: Json) {
        let row = self.row;
        let entries = match value {
            Json::Null => return,
            Json::Array(entries) => entries,
            other => {
                self.errors.push(error(
                    row,
                    key,
                    &other.shown(),
                    format!(
                        "expected a list like [{{\"varighet\":\"A\",\"tapteDagsverk\":12.1527}}], got {}",
                        other.kind()
                    ),
                ));
                return;
            }
        };
        for (i, entry) in entries.into_iter().enumerate() {
            let path = format!("{key}[{i}]");
            let Json::Object(members) = entry else {
                self.errors.push(error(
                    row,
                    &path,
                    &entry.shown(),
                    format!(
                        "expected an object {{\"varighet\": \"A\", \"tapteDagsverk\": …}}, got {}",
                        entry.kind()
                    ),
                ));
                continue;
            };
            let mut letter: Option<(String, Json)> = None;
            let mut dagsverk: Option<(String, Json)> = None;
            for (name, value) in members {
                let slot = match name.as_str() {
                    "varighet" => &mut letter,
                    "tapteDagsverk" => &mut dagsverk,
                    _ => {
                        let field = format!("{path}.{name}");
                        self.errors.push(error(
                            row,
                            &field,
                            &value.shown(),
                            format!(
                                "unknown key `{name}`; a varighet entry has the keys varighet and tapteDagsverk"
                            ),
                        ));
                        continue;
                    }
                };
                if slot.is_some() {
                    let field = format!("{path}.{name}");
                    self.errors.push(error(
                        row,
                        &field,
                        &value.shown(),
                        format!("`{name}` is given twice; keep one"),
                    ));
                } else {
                    *slot = Some((name, value));
                }
            }
            let Some((_, letter_value)) = letter else {
                self.errors.push(error(
                    row,
                    &format!("{path}.varighet"),
                    "",
                    "missing; every entry names its varighet class, A to F (or X)",
                ));
                continue;
            };
            let letter_path = format!("{path}.varighet");
            let class = match &letter_value {
                Json::String(s) => {
                    let mut chars = s.trim().chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if VARIGHETER.contains(&c) => Some(c),
                        _ => None,
                    }
                }
                _ => None,
            };
            let Some(class) = class else {
                self.errors.push(error(
                    row,
                    &letter_path,
                    &letter_value.shown(),
                    "not a varighet class; expected one capital letter: A (1-7 days), B (8-16 days), C (17 days-8 weeks), D (8-20 weeks), E (20-39 weeks), F (more than 39 weeks) or X (total) (docs/nav-data.md §1.8)",
                ));
                continue;
            };
            let Some((_, dagsverk)) = dagsverk else {
                continue;
            };
            let field = Field::Varighet(class);
            if let Some(first) = self.cells.get(&field) {
                let reason = format!(
                    "varighet {class} is listed twice (also at `{}`); keep one",
                    first.name
                );
                self.errors
                    .push(error(row, &letter_path, &letter_value.shown(), reason));
                continue;
            }
            self.insert(
                field,
                Cell {
                    name: format!("{path}.tapteDagsverk"),
                    value: dagsverk,
                },
            );
        }
    }
}

/// `null` and blank text are "not given".
fn is_blank(value: &Json) -> bool {
    match value {
        Json::Null => true,
        Json::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Builds typed values, collecting every problem with the row.
struct Check {
    row: usize,
    shape: Shape,
    cells: BTreeMap<Field, Cell>,
    errors: Vec<RowError>,
}

impl Check {
    fn new(raw: RawRow) -> Check {
        Check {
            row: raw.row,
            shape: raw.shape,
            cells: raw.cells,
            errors: raw.errors,
        }
    }

    fn push(&mut self, field: Field, reason: impl Into<String>) {
        let error = match self.cells.get(&field) {
            Some(cell) => cell.error(self.row, reason),
            None => error(self.row, &field.canonical(self.shape), "", reason),
        };
        self.errors.push(error);
    }

    /// Applies `parse` to a given cell; `None` if absent (reported when `required`) or invalid.
    fn get<T>(
        &mut self,
        field: Field,
        required: bool,
        parse: impl FnOnce(&Json) -> Result<T, String>,
    ) -> Option<T> {
        let Some(cell) = self.cells.get(&field) else {
            if required {
                let name = field.canonical(self.shape);
                self.errors.push(error(
                    self.row,
                    &name,
                    "",
                    format!("missing; every row needs `{name}`"),
                ));
            }
            return None;
        };
        match parse(&cell.value) {
            Ok(value) => Some(value),
            Err(reason) => {
                self.errors.push(cell.error(self.row, reason));
                None
            }
        }
    }

    fn orgnr(&mut self) -> Option<Orgnr> {
        self.get(Field::Orgnr, true, |v| {
            text(v)?.parse::<Orgnr>().map_err(|e| e.to_string())
        })
    }

    fn quarter(&mut self) -> Option<Quarter> {
        let year = self.get(Field::Arstall, true, whole);
        let quarter = self.get(Field::Kvartal, true, |v| {
            let q = whole(v)?;
            if (1..=4).contains(&q) {
                Ok(q)
            } else {
                Err("kvartal must be 1, 2, 3 or 4".to_owned())
            }
        });
        let (year, quarter) = (year?, quarter?);
        let out_of_range = || {
            format!(
                "årstall {year} is outside {}-{}; check the column",
                crate::domain::FIRST_YEAR,
                crate::domain::LAST_YEAR
            )
        };
        let Ok(year32) = i32::try_from(year) else {
            self.push(Field::Arstall, out_of_range());
            return None;
        };
        let q32 = i32::try_from(quarter).unwrap_or_default();
        match Quarter::new(year32, q32) {
            Ok(q) => Some(q),
            Err(_) => {
                self.push(Field::Arstall, out_of_range());
                None
            }
        }
    }

    fn rectype(&mut self) -> Option<String> {
        self.get(Field::Rectype, false, |v| {
            let t = text(v)?;
            if matches!(t.as_str(), "1" | "2" | "3") {
                Ok(t)
            } else {
                Err("expected rectype 1 (overordnet enhet), 2 (underenhet) or 3 (organisasjonsledd) (docs/nav-data.md §4.2)".to_owned())
            }
        })
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<RowError>> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ if self.errors.is_empty() => {
                Err(vec![error(self.row, "", "", "the row could not be read")])
            }
            _ => Err(self.errors),
        }
    }
}

/// Validates a statistics row (`docs/data-formats.md` §2 rules).
pub(super) fn stat_row(raw: RawRow) -> Result<StatRow, Vec<RowError>> {
    let mut check = Check::new(raw);
    let orgnr = check.orgnr();
    let quarter = check.quarter();
    let tapte = check.get(Field::Tapte, true, |v| {
        dagsverk(v, "tapte dagsverk cannot be negative")
    });
    let mulige = check.get(Field::Mulige, true, |v| {
        let m = decimal(v)?;
        if m > 0.0 {
            dagsverk_of(m, "")
        } else {
            Err("mulige dagsverk must be greater than 0; a quarter without possible dagsverk has no sick-leave rate".to_owned())
        }
    });
    if let (Some(t), Some(m)) = (tapte, mulige)
        && t > m
    {
        let (t_name, m_name) = (
            check.cells.get(&Field::Tapte).map(|c| c.name.clone()),
            check.cells.get(&Field::Mulige).map(|c| c.name.clone()),
        );
        check.push(
            Field::Tapte,
            format!(
                "{} ({t}) exceed {} ({m}); tapte dagsverk cannot be more than mulige, check that the values are not swapped",
                t_name.unwrap_or_default(),
                m_name.unwrap_or_default()
            ),
        );
    }
    let antall = check.get(Field::Antpers, true, count);
    let gradert = check.get(Field::Gradert, false, |v| {
        dagsverk(v, "graded tapte dagsverk cannot be negative")
    });
    let prosent = check.get(Field::Prosent, false, |v| {
        let p = decimal(v)?;
        if (0.0..=100.0).contains(&p) {
            Ok(p)
        } else {
            Err("prosent must be between 0 and 100".to_owned())
        }
    });
    let rectype = check.rectype();
    let classes: Vec<char> = check
        .cells
        .keys()
        .filter_map(|f| match f {
            Field::Varighet(c) => Some(*c),
            _ => None,
        })
        .collect();
    let mut varighet = BTreeMap::new();
    for class in classes {
        if let Some(value) = check.get(Field::Varighet(class), false, |v| {
            dagsverk(v, "tapte dagsverk cannot be negative")
        }) {
            varighet.insert(class, value);
        }
    }

    let row = (|| {
        Some(StatRow {
            orgnr: orgnr?,
            quarter: quarter?,
            tapte_dagsverk: tapte?,
            mulige_dagsverk: mulige?,
            antall_personer: antall?,
            tapte_dagsverk_gradert: gradert,
            prosent_published: prosent,
            rectype,
            varighet,
        })
    })();
    check.finish(row)
}

/// [`stat_row`] for a DVH CSV record given as trimmed cells by [`Field::slot`], without building a
/// [`RawRow`]: the same rules on the same trimmed text, so it returns the [`StatRow`] that [`stat_row`] would,
/// or `None` when [`stat_row`] would report anything (the caller then takes that path for the
/// messages). Most of a 12-million-row history goes through here.
pub(super) fn stat_row_fast(cells: &[Option<&str>; Field::SLOTS]) -> Option<StatRow> {
    stat_row_fast_after(cells, None)
}

/// [`stat_row_fast`], given the previous record's orgnr cell and its value: rows come grouped by
/// firm, and the same text parses to the same number.
pub(super) fn stat_row_fast_after(
    cells: &[Option<&str>; Field::SLOTS],
    previous: Option<(&str, Orgnr)>,
) -> Option<StatRow> {
    let cell = |field: Field| -> Option<&str> { cells.get(field.slot()?).copied().flatten() };
    let non_negative = |field: Field| -> Option<Option<f64>> {
        match cell(field) {
            None => Some(None),
            Some(t) => {
                let v = decimal_token(t).ok()?;
                (0.0..=super::MAX_DAGSVERK).contains(&v).then_some(Some(v))
            }
        }
    };
    let orgnr: Orgnr = match (cell(Field::Orgnr)?, previous) {
        (text, Some((before, orgnr))) if text == before => orgnr,
        (text, _) => text.parse().ok()?,
    };
    let year = whole_token(cell(Field::Arstall)?).ok()?;
    let kvartal = whole_token(cell(Field::Kvartal)?).ok()?;
    if !(1..=4).contains(&kvartal) {
        return None;
    }
    let quarter = Quarter::new(i32::try_from(year).ok()?, i32::try_from(kvartal).ok()?).ok()?;
    let tapte = non_negative(Field::Tapte)??;
    let mulige = decimal_token(cell(Field::Mulige)?).ok()?;
    // `decimal_token` gives finite numbers only, so this is `stat_row`'s `m > 0.0` test.
    if mulige <= 0.0 || mulige > super::MAX_DAGSVERK || tapte > mulige {
        return None;
    }
    let antall = count_of(whole_token(cell(Field::Antpers)?).ok()?).ok()?;
    let gradert = non_negative(Field::Gradert)?;
    let prosent = match cell(Field::Prosent) {
        None => None,
        Some(t) => {
            let p = decimal_token(t).ok()?;
            if !(0.0..=100.0).contains(&p) {
                return None;
            }
            Some(p)
        }
    };
    let rectype = match cell(Field::Rectype) {
        None => None,
        Some(t) => {
            if !matches!(t, "1" | "2" | "3") {
                return None;
            }
            Some(t.to_owned())
        }
    };
    let mut varighet = BTreeMap::new();
    // The varighet cells are slots 9.. in DVH_VARIGHETER's order (`Field::slot`); most files have
    // none, so look at the cells before building each field.
    for (class, cell) in DVH_VARIGHETER
        .iter()
        .zip(cells.get(9..).unwrap_or_default())
    {
        if cell.is_some()
            && let Some(v) = non_negative(Field::Varighet(*class))?
        {
            varighet.insert(*class, v);
        }
    }
    Some(StatRow {
        orgnr,
        quarter,
        tapte_dagsverk: tapte,
        mulige_dagsverk: mulige,
        antall_personer: antall,
        tapte_dagsverk_gradert: gradert,
        prosent_published: prosent,
        rectype,
        varighet,
    })
}

/// Validates a metadata row.
pub(super) fn metadata_row(raw: RawRow) -> Result<MetadataRow, Vec<RowError>> {
    let mut check = Check::new(raw);
    let orgnr = check.orgnr();
    let quarter = check.quarter();
    let sektor = check.get(Field::Sektor, true, |v| {
        text(v)?.parse::<Sektor>().map_err(|e| e.to_string())
    });
    let naring = check.get(Field::Primaernaring, false, |v| {
        let t = text(v)?;
        if t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit()) {
            Ok(t)
        } else {
            Err("expected a 2-digit næring (SN2007 level 2), e.g. 88".to_owned())
        }
    });
    let kode = check.get(Field::Primaernaringskode, false, |v| {
        text(v)?
            .parse::<Naeringskode>()
            .map(|k| k.as_str().to_owned())
            .map_err(|e| e.to_string())
    });
    if let (Some(naring), Some(kode)) = (&naring, &kode)
        && !kode.starts_with(naring.as_str())
    {
        let reason = format!(
            "primærnæring {naring} is not the first two digits of primærnæringskode {kode}; NAV derives one from the other (docs/nav-data.md §1.2)"
        );
        check.push(Field::Primaernaring, reason);
    }
    let rectype = check.rectype();
    let row = (|| {
        Some(MetadataRow {
            orgnr: orgnr?,
            quarter: quarter?,
            sektor: sektor?,
            primaernaring: naring,
            primaernaringskode: kode,
            rectype,
        })
    })();
    check.finish(row)
}

/// Text as written: a JSON string (trimmed) or a number token.
fn text(value: &Json) -> Result<String, String> {
    match value {
        Json::String(s) => Ok(s.trim().to_owned()),
        Json::Number(n) => Ok(n.clone()),
        other => Err(format!("expected text or a number, got {}", other.kind())),
    }
}

/// A finite decimal: a JSON number token or a string, parsed by Rust's `f64` parser at full precision.
pub(super) fn decimal(value: &Json) -> Result<f64, String> {
    match value {
        Json::Number(n) => decimal_token(n),
        Json::String(s) => decimal_token(s.trim()),
        other => Err(format!("expected a number, got {}", other.kind())),
    }
}

/// [`decimal`] of a trimmed token.
fn decimal_token(token: &str) -> Result<f64, String> {
    match token.parse::<f64>() {
        // `+ 0.0` stores `-0` as 0.
        Ok(v) if v.is_finite() => Ok(v + 0.0),
        Ok(_) => Err("not a finite number (NaN, infinite or too large)".to_owned()),
        Err(_) if token.matches(',').count() == 1 && !token.contains('.') => Err(
            "decimal comma: write 12.5, not 12,5 (NAV's DVH columns and JSON use a decimal point)"
                .to_owned(),
        ),
        Err(_) => Err("not a number; write e.g. 20.23 (decimal point)".to_owned()),
    }
}

/// A whole number written as a plain integer: `40` or `"40"` (an optional `-`, then digits). `40.0`,
/// `4e1` and `+40` are refused: NAV's integer columns are written as integers, and an exponent or a
/// fraction in one is a sign of a column that went through a spreadsheet or a float conversion.
fn whole(value: &Json) -> Result<i64, String> {
    match value {
        Json::Number(n) => whole_token(n),
        Json::String(s) => whole_token(s.trim()),
        other => Err(format!("expected a whole number, got {}", other.kind())),
    }
}

/// [`whole`] of a trimmed token.
fn whole_token(token: &str) -> Result<i64, String> {
    let digits = token.strip_prefix('-').unwrap_or(token);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return token
            .parse::<i64>()
            .map_err(|_| "expected a whole number; this one is too large".to_owned());
    }
    match token.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() != 0.0 => {
            Err("expected a whole number; this one has a fractional part".to_owned())
        }
        Ok(v) if v.is_finite() => Err(
            "expected a plain whole number, e.g. 40 (digits only, without a decimal point or exponent)"
                .to_owned(),
        ),
        _ => Err("expected a whole number, e.g. 40".to_owned()),
    }
}

/// `antallPersoner`: a whole number from 0 to [`MAX_PERSONS`](super::MAX_PERSONS).
fn count(value: &Json) -> Result<u32, String> {
    count_of(whole(value)?)
}

/// [`count`] of a whole number.
fn count_of(n: i64) -> Result<u32, String> {
    if n < 0 {
        return Err("the number of persons cannot be negative".to_owned());
    }
    match u32::try_from(n) {
        Ok(n) if n <= super::MAX_PERSONS => Ok(n),
        _ => Err(format!(
            "more than {} persons in one virksomhet and quarter; NAV's largest units have far fewer, check the column",
            super::MAX_PERSONS
        )),
    }
}

/// A dagsverk value within 0 ..= [`MAX_DAGSVERK`](super::MAX_DAGSVERK); `negative` says why below 0.
fn dagsverk(value: &Json, negative: &str) -> Result<f64, String> {
    dagsverk_of(decimal(value)?, negative)
}

/// [`dagsverk`] of a finite number.
fn dagsverk_of(v: f64, negative: &str) -> Result<f64, String> {
    if v < 0.0 {
        Err(negative.to_owned())
    } else if v > super::MAX_DAGSVERK {
        Err(format!(
            "more than {:e} dagsverk in one virksomhet and quarter; check the column (a unit of 1,000,000 persons has about 6e7)",
            super::MAX_DAGSVERK
        ))
    } else {
        Ok(v)
    }
}
