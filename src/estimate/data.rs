//! From an assignment and NAV's firm-quarter statistics to the numbers the estimators see
//! (protocols/ANALYSIS.md §1-§3): windows, ratio-of-sums rates, attrition, missing baselines.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::ops::ControlFlow;

use rayon::prelude::*;

use crate::domain::{Orgnr, Quarter};
use crate::progress::Progress;
use crate::statistics::{self, StatRow};

use super::EstimateError;

/// A hasher for the orgnr → unit map read once per statistics row (12 million at register scale):
/// a multiplicative hash of the 9-digit number, since the keys are not chosen by an adversary.
#[derive(Default)]
struct OrgnrHasher(u64);

impl Hasher for OrgnrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        let h = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

/// One randomized firm.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignedUnit {
    /// The firm.
    pub orgnr: Orgnr,
    /// Its arm.
    pub arm: String,
    /// Its stratum.
    pub stratum: String,
    /// Its cluster when clusters were randomized (None for a firm randomized alone).
    pub klynge: Option<String>,
}

/// The analysis windows (ANALYSIS.md §2).
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    /// The randomization quarter R (relative time 0).
    pub randomized_at: Quarter,
    /// Quarters before R in the pre window.
    pub pre: u32,
    /// Quarters from R on in the post window.
    pub post: u32,
}

impl Windows {
    /// Relative time of a quarter, if it is inside one of the windows.
    pub fn relative(&self, q: Quarter) -> Option<i32> {
        let rel = q - self.randomized_at;
        (rel >= -(self.pre as i32) && rel < self.post as i32).then_some(rel)
    }

    /// First and last quarter used.
    pub fn span(&self) -> Option<(Quarter, Quarter)> {
        Some((
            self.randomized_at.plus(-(self.pre as i32))?,
            self.randomized_at.plus(self.post as i32 - 1)?,
        ))
    }
}

/// One firm-quarter inside the windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obs {
    /// Index into [`StudyData::units`].
    pub unit: u32,
    /// Quarter relative to R.
    pub rel: i16,
    /// Lost workdays.
    pub tapte: f64,
    /// Possible workdays.
    pub mulige: f64,
}

/// Per-firm window summaries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FirmSummary {
    /// Post-window rate (percent), if the firm has post rows.
    pub post_rate: Option<f64>,
    /// Pre-window rate (percent), if the firm has pre rows.
    pub baseline: Option<f64>,
    /// Σ mulige over the post window (the `dagsverk` weight).
    pub post_mulige: f64,
}

/// Dense integer ids of the units' arms, strata and clusters, derived once when the study is built,
/// so that the estimators (and randomization inference, which re-runs them thousands of times)
/// compare integers, not names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitIds {
    /// The arms, sorted.
    pub arms: Vec<String>,
    /// Each unit's arm (index into `arms`).
    pub arm: Vec<u32>,
    /// The strata, sorted.
    pub strata: Vec<String>,
    /// Each unit's stratum (index into `strata`).
    pub stratum: Vec<u32>,
    /// Each unit's cluster when any unit has a klynge: a firm randomized alone is its own cluster
    /// (its unit index, `0..n`), and klynger are numbered from `n` in order of appearance.
    pub cluster: Option<Vec<u32>>,
}

impl UnitIds {
    /// The ids of `units`, in their order.
    pub fn new(units: &[AssignedUnit]) -> UnitIds {
        let (arms, arm) = dense_ids(units.iter().map(|u| u.arm.as_str()));
        let (strata, stratum) = dense_ids(units.iter().map(|u| u.stratum.as_str()));
        let cluster = units.iter().any(|u| u.klynge.is_some()).then(|| {
            let mut klynge_ids: HashMap<&str, u32> = HashMap::new();
            let mut next = units.len() as u32;
            units
                .iter()
                .enumerate()
                .map(|(i, u)| match &u.klynge {
                    Some(k) => *klynge_ids.entry(k.as_str()).or_insert_with(|| {
                        next += 1;
                        next - 1
                    }),
                    None => i as u32,
                })
                .collect()
        });
        UnitIds {
            arms,
            arm,
            strata,
            stratum,
            cluster,
        }
    }
}

/// The distinct names in sorted order, and each item's index among them (one hash lookup per
/// item, then a sort of the distinct names only).
fn dense_ids<'a>(names: impl Iterator<Item = &'a str>) -> (Vec<String>, Vec<u32>) {
    let mut first_seen: HashMap<&str, u32> = HashMap::new();
    let mut distinct: Vec<&str> = Vec::new();
    let mut last: Option<(&str, u32)> = None;
    let provisional: Vec<u32> = names
        .map(|name| match last {
            Some((l, id)) if l == name => id,
            _ => {
                let id = *first_seen.entry(name).or_insert_with(|| {
                    distinct.push(name);
                    distinct.len() as u32 - 1
                });
                last = Some((name, id));
                id
            }
        })
        .collect();
    let mut order: Vec<u32> = (0..distinct.len() as u32).collect();
    order.sort_by_key(|&k| distinct[k as usize]);
    let mut rank = vec![0u32; distinct.len()];
    for (r, &k) in order.iter().enumerate() {
        rank[k as usize] = r as u32;
    }
    let sorted = order
        .iter()
        .map(|&k| distinct[k as usize].to_owned())
        .collect();
    (
        sorted,
        provisional.iter().map(|&k| rank[k as usize]).collect(),
    )
}

/// The study: units, their window rows, and summaries.
#[derive(Debug, Clone)]
pub struct StudyData {
    /// Windows.
    pub windows: Windows,
    /// Units sorted by orgnr.
    pub units: Vec<AssignedUnit>,
    /// The units' arms, strata and clusters as dense ids.
    pub ids: UnitIds,
    /// Rows sorted by (unit, rel).
    pub obs: Vec<Obs>,
    /// Summary per unit.
    pub summaries: Vec<FirmSummary>,
    /// Statistics rows read, and how many were outside the assignment or the windows.
    pub rows_read: usize,
    /// Rows not used (other firms or quarters).
    pub rows_ignored: usize,
}

impl StudyData {
    /// The baseline columns of ANCOVA and Lin for `units` (indices into [`StudyData::units`]):
    /// `b` (0 when missing) and, when any of them lacks a baseline, the indicator `b_missing`
    /// (ANALYSIS.md §2).
    pub fn baseline_columns(&self, units: impl Iterator<Item = usize>) -> Vec<(String, Vec<f64>)> {
        let b: Vec<Option<f64>> = units.map(|i| self.summaries[i].baseline).collect();
        let mut cols = vec![("b".to_owned(), b.iter().map(|v| v.unwrap_or(0.0)).collect())];
        if b.iter().any(Option::is_none) {
            cols.push((
                "b_missing".to_owned(),
                b.iter()
                    .map(|v| if v.is_none() { 1.0 } else { 0.0 })
                    .collect(),
            ));
        }
        cols
    }

    /// Builds the study from units and statistics rows.
    ///
    /// # Errors
    /// A duplicate firm in the assignment or a duplicate firm-quarter in the statistics.
    pub fn new(
        windows: Windows,
        units: Vec<AssignedUnit>,
        rows: impl IntoIterator<Item = StatRow>,
    ) -> Result<StudyData, EstimateError> {
        StudyData::from_values(
            windows,
            units,
            rows.into_iter()
                .map(|r| (r.orgnr, r.quarter, r.tapte_dagsverk, r.mulige_dagsverk)),
        )
    }

    /// Builds the study from (orgnr, quarter, tapte, mulige) values, e.g. as stored.
    ///
    /// # Errors
    /// A duplicate firm in the assignment or a duplicate firm-quarter in the statistics.
    pub fn from_values(
        windows: Windows,
        mut units: Vec<AssignedUnit>,
        rows: impl IntoIterator<Item = (Orgnr, Quarter, f64, f64)>,
    ) -> Result<StudyData, EstimateError> {
        sort_units(&mut units)?;
        let index = unit_index(&units);
        let mut part = Part::default();
        let mut last = None;
        for (orgnr, quarter, tapte, mulige) in rows {
            part.push(&index, &windows, &mut last, orgnr, quarter, tapte, mulige)?;
        }
        StudyData::finish(windows, units, part.obs, part.rows_read, part.rows_ignored)
    }

    /// Sorts and checks the window rows and sums them up per firm.
    fn finish(
        windows: Windows,
        units: Vec<AssignedUnit>,
        mut obs: Vec<Obs>,
        rows_read: usize,
        rows_ignored: usize,
    ) -> Result<StudyData, EstimateError> {
        obs.shrink_to_fit();
        // Rows usually come sorted by firm, then quarter: one pass shows that they are, and that
        // no firm-quarter repeats, and saves the sort (and its scratch buffer of half the rows).
        let key = |o: &Obs| (o.unit, o.rel);
        if !obs.par_windows(2).all(|w| key(&w[0]) < key(&w[1])) {
            obs.sort_by_key(key);
            if let Some(w) = obs.windows(2).find(|w| key(&w[0]) == key(&w[1])) {
                let q = windows.randomized_at.plus(i32::from(w[0].rel));
                return Err(EstimateError::InvalidData(format!(
                    "firm {} has two rows for quarter {}",
                    units[w[0].unit as usize].orgnr,
                    q.map(|q| q.to_string()).unwrap_or_default()
                )));
            }
        }
        let mut summaries = vec![
            FirmSummary {
                post_rate: None,
                baseline: None,
                post_mulige: 0.0,
            };
            units.len()
        ];
        // Each firm's sums in row order, firms in pieces on every core: the same bits on one
        // thread or many.
        let mut sums = vec![[0.0f64; 4]; units.len()];
        let mut pieces = Vec::new();
        let (mut rows, mut rest, mut first_unit) = (&obs[..], &mut sums[..], 0usize);
        while !rows.is_empty() {
            // About 64 pieces, each ending where a firm ends.
            let mut end = rows.len().min(obs.len() / 64 + 1);
            let last_unit = rows[end - 1].unit;
            while end < rows.len() && rows[end].unit == last_unit {
                end += 1;
            }
            let (these, others) = rows.split_at(end);
            let n_units = last_unit as usize + 1 - first_unit;
            let (mine, theirs) = rest.split_at_mut(n_units.min(rest.len()));
            pieces.push((these, mine, first_unit));
            (rows, rest, first_unit) = (others, theirs, last_unit as usize + 1);
        }
        pieces.into_par_iter().for_each(|(rows, sums, first_unit)| {
            for o in rows {
                if let Some(s) = sums.get_mut(o.unit as usize - first_unit) {
                    let k = if o.rel >= 0 { 2 } else { 0 };
                    s[k] += o.tapte;
                    s[k + 1] += o.mulige;
                }
            }
        });
        for (sum, summary) in sums.iter().zip(summaries.iter_mut()) {
            if sum[3] > 0.0 {
                summary.post_rate = Some(100.0 * sum[2] / sum[3]);
                summary.post_mulige = sum[3];
            }
            if sum[1] > 0.0 {
                summary.baseline = Some(100.0 * sum[0] / sum[1]);
            }
        }
        Ok(StudyData {
            windows,
            ids: UnitIds::new(&units),
            units,
            obs,
            summaries,
            rows_read,
            rows_ignored,
        })
    }

    /// Reads NAV statistics (either format) and builds the study.
    ///
    /// # Errors
    /// The first problems in the statistics, or a duplicate firm-quarter.
    pub fn from_stats_reader<R: Read + Send>(
        windows: Windows,
        units: Vec<AssignedUnit>,
        reader: R,
    ) -> Result<StudyData, EstimateError> {
        StudyData::from_stats_readers(windows, units, vec![(String::new(), reader)])
    }

    /// Reads several NAV statistics files (each in either format, say one per quarter as NAV
    /// publishes them), one after the other, and builds the study; a firm-quarter may appear only
    /// once over all of them. Each source has a label that prefixes its problems.
    ///
    /// # Errors
    /// The first problems in the statistics (up to 10, with how many there were), or a duplicate
    /// firm-quarter.
    pub fn from_stats_readers<R: Read + Send>(
        windows: Windows,
        units: Vec<AssignedUnit>,
        sources: Vec<(String, R)>,
    ) -> Result<StudyData, EstimateError> {
        StudyData::from_stats_readers_with(windows, units, sources, &Progress::new())
    }

    /// [`StudyData::from_stats_readers`], advancing `progress` by the bytes read (the caller
    /// names the stage and its total) and stopping with [`EstimateError::Cancelled`] once it is
    /// cancelled. A DVH CSV file is read on every core of the current rayon pool
    /// ([`statistics::read_stats_parallel`]): the rows are cut into chunks, each chunk's window
    /// rows are found in parallel, and the chunks are joined in file order, so the study (and
    /// every problem reported) is the same with one thread or many.
    ///
    /// # Errors
    /// As [`StudyData::from_stats_readers`], or [`EstimateError::Cancelled`].
    pub fn from_stats_readers_with<R: Read + Send>(
        windows: Windows,
        mut units: Vec<AssignedUnit>,
        sources: Vec<(String, R)>,
        progress: &Progress,
    ) -> Result<StudyData, EstimateError> {
        sort_units(&mut units)?;
        let index = unit_index(&units);
        // The parts of every source, joined in order; reading stops at the first invalid value.
        let mut all = Part::default();
        for (label, reader) in sources {
            let reader = Counted {
                inner: reader,
                progress,
            };
            let (format, reader) = match statistics::sniff(reader) {
                Ok(sniffed) => sniffed,
                Err(e) => {
                    all.problem(&label, format!("the statistics could not be read: {e}"));
                    continue;
                }
            };
            let map = |rows: &mut statistics::StatRows<'_>| {
                // A chunk of 1 MiB has some 25,000 rows.
                let mut part = Part {
                    obs: Vec::with_capacity(1 << 15),
                    ..Part::default()
                };
                let mut last = None;
                for row in rows {
                    match row {
                        Ok(r) => {
                            let pushed = part.push(
                                &index,
                                &windows,
                                &mut last,
                                r.orgnr,
                                r.quarter,
                                r.tapte_dagsverk,
                                r.mulige_dagsverk,
                            );
                            if let Err(e) = pushed {
                                part.invalid = Some(e);
                                break;
                            }
                        }
                        Err(problem) => part.problem(&label, problem.to_string()),
                    }
                }
                part
            };
            statistics::read_stats_parallel(reader, format, map, |part| {
                all.join(part);
                if all.invalid.is_some() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            if all.invalid.is_some() {
                break;
            }
        }
        progress.check()?;
        if !all.problems.is_empty() {
            return Err(EstimateError::InvalidData(format!(
                "statistics: {} problem(s); first: {}",
                all.total_problems,
                all.problems.join("; ")
            )));
        }
        if let Some(e) = all.invalid {
            return Err(e);
        }
        StudyData::finish(windows, units, all.obs, all.rows_read, all.rows_ignored)
    }
}

/// Problems kept for the message (the first ones; all are counted).
const MAX_PROBLEMS: usize = 10;

/// The window rows of assigned firms among some statistics rows, in their order, with the counts
/// and the first problems.
#[derive(Debug, Default)]
struct Part {
    obs: Vec<Obs>,
    rows_read: usize,
    rows_ignored: usize,
    /// The first [`MAX_PROBLEMS`] problems, prefixed by their source's label.
    problems: Vec<String>,
    total_problems: usize,
    /// A row whose values the study cannot use; nothing after it was read.
    invalid: Option<EstimateError>,
}

impl Part {
    /// One row: kept if its firm is assigned and its quarter is in a window, ignored otherwise.
    /// `last` remembers the last firm's unit, reused while rows come grouped by firm.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        index: &UnitIndex,
        windows: &Windows,
        last: &mut Option<(Orgnr, Option<u32>)>,
        orgnr: Orgnr,
        quarter: Quarter,
        tapte: f64,
        mulige: f64,
    ) -> Result<(), EstimateError> {
        self.rows_read += 1;
        let unit = match *last {
            Some((o, unit)) if o == orgnr => unit,
            _ => {
                let unit = index.get(&orgnr).copied();
                *last = Some((orgnr, unit));
                unit
            }
        };
        let (Some(unit), Some(rel)) = (unit, windows.relative(quarter)) else {
            self.rows_ignored += 1;
            return Ok(());
        };
        if !(mulige > 0.0 && tapte >= 0.0 && tapte.is_finite() && mulige.is_finite()) {
            return Err(EstimateError::InvalidData(format!(
                "firm {orgnr} quarter {quarter}: tapte {tapte} and mulige {mulige} dagsverk \
                 (mulige must be positive, tapte non-negative)"
            )));
        }
        self.obs.push(Obs {
            unit,
            rel: rel as i16,
            tapte,
            mulige,
        });
        Ok(())
    }

    /// A problem of the source labelled `label` (no prefix when the label is empty).
    fn problem(&mut self, label: &str, problem: String) {
        self.total_problems += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(if label.is_empty() {
                problem
            } else {
                format!("{label}: {problem}")
            });
        }
    }

    /// Appends the part that follows this one.
    fn join(&mut self, mut next: Part) {
        if self.obs.is_empty() {
            self.obs = std::mem::take(&mut next.obs);
        } else {
            self.obs.append(&mut next.obs);
        }
        self.rows_read += next.rows_read;
        self.rows_ignored += next.rows_ignored;
        self.total_problems += next.total_problems;
        let room = MAX_PROBLEMS.saturating_sub(self.problems.len());
        self.problems.extend(next.problems.into_iter().take(room));
        if self.invalid.is_none() {
            self.invalid = next.invalid;
        }
    }
}

/// The orgnr → unit map.
type UnitIndex = HashMap<Orgnr, u32, BuildHasherDefault<OrgnrHasher>>;

fn unit_index(units: &[AssignedUnit]) -> UnitIndex {
    units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.orgnr, i as u32))
        .collect()
}

/// Sorts the units by orgnr; a firm assigned twice is an error.
fn sort_units(units: &mut [AssignedUnit]) -> Result<(), EstimateError> {
    units.sort_by_key(|u| u.orgnr);
    if let Some(w) = units.windows(2).find(|w| w[0].orgnr == w[1].orgnr) {
        return Err(EstimateError::InvalidData(format!(
            "firm {} appears twice in the assignment",
            w[0].orgnr
        )));
    }
    Ok(())
}

/// A reader that advances a [`Progress`] by the bytes it reads, and fails once it is cancelled.
struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.progress.is_cancelled() {
            return Err(std::io::Error::other("cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Reads an assignment table (`orgnr, arm, stratum [, klynge]`; other columns ignored; `#` lines
/// are comments and `# key=value` lines are returned as metadata). Comma or semicolon separated.
///
/// # Errors
/// The first problems, each naming its row and field.
pub fn read_assignment_table(
    text: &str,
) -> Result<(Vec<AssignedUnit>, BTreeMap<String, String>), EstimateError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut meta = BTreeMap::new();
    let mut body = String::with_capacity(text.len());
    for line in text.lines() {
        if let Some(c) = line.strip_prefix('#') {
            if let Some((k, v)) = c.trim().split_once('=') {
                meta.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    let first = body.lines().next().unwrap_or("");
    let delimiter = if first.contains(';') && !first.contains(',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .from_reader(body.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| EstimateError::InvalidData(format!("assignment header: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(c_orgnr), Some(c_arm), Some(c_stratum)) = (col("orgnr"), col("arm"), col("stratum"))
    else {
        return Err(EstimateError::InvalidData(
            "assignment: the header must name the columns orgnr, arm and stratum (klynge optional)"
                .into(),
        ));
    };
    let c_klynge = col("klynge");
    let mut units = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("row {row}: {e}"));
                continue;
            }
        };
        let get = |c: usize| record.get(c).unwrap_or("").trim();
        let orgnr = match get(c_orgnr).parse::<Orgnr>() {
            Ok(o) => o,
            Err(e) => {
                problems.push(format!(
                    "row {row}, field orgnr, value {:?}: {e}",
                    get(c_orgnr)
                ));
                continue;
            }
        };
        let arm = get(c_arm);
        let stratum = get(c_stratum);
        if arm.is_empty() {
            problems.push(format!("row {row}, field arm: missing"));
            continue;
        }
        if stratum.is_empty() {
            problems.push(format!("row {row}, field stratum: missing"));
            continue;
        }
        let klynge = c_klynge
            .map(get)
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        units.push(AssignedUnit {
            orgnr,
            arm: arm.to_owned(),
            stratum: stratum.to_owned(),
            klynge,
        });
        if problems.len() >= 10 {
            break;
        }
    }
    if !problems.is_empty() {
        return Err(EstimateError::InvalidData(format!(
            "assignment: {}",
            problems.join("; ")
        )));
    }
    Ok((units, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DVH CSV of `firms` firms x 8 quarters (in reverse order when `reverse`), with a bad row,
    /// and the assignment of every other firm.
    fn files(firms: u32, reverse: bool) -> (String, Vec<AssignedUnit>) {
        let orgnrs: Vec<Orgnr> = (10_000_000u32..)
            .filter_map(|p| Some(p * 10 + Orgnr::check_digit(p)?))
            .filter_map(|n| n.to_string().parse().ok())
            .take(firms as usize)
            .collect();
        let mut lines = Vec::new();
        for (i, o) in orgnrs.iter().enumerate() {
            for q in 0..8u32 {
                let t = (i as u32 * 7 + q * 3) % 50;
                lines.push(format!(
                    "{o},{},{},{t}.{q}3,{}.75,9",
                    2023 + q / 4,
                    q % 4 + 1,
                    60 + i % 9
                ));
            }
        }
        if reverse {
            lines.reverse();
        }
        let units = orgnrs
            .iter()
            .step_by(2)
            .map(|&orgnr| AssignedUnit {
                orgnr,
                arm: if orgnr.to_string().ends_with(['1', '3', '5', '7', '9']) {
                    "b"
                } else {
                    "a"
                }
                .into(),
                stratum: "s".into(),
                klynge: None,
            })
            .collect();
        let header = "orgnr,arstall,kvartal,taptedv,muligedv,antpers";
        (format!("{header}\n{}\n", lines.join("\n")), units)
    }

    fn windows() -> Windows {
        Windows {
            randomized_at: Quarter::new(2024, 1).expect("quarter"),
            pre: 4,
            post: 3,
        }
    }

    fn bits(d: &StudyData) -> Vec<u64> {
        let mut out: Vec<u64> = d
            .obs
            .iter()
            .flat_map(|o| {
                [
                    u64::from(o.unit),
                    o.rel as u64,
                    o.tapte.to_bits(),
                    o.mulige.to_bits(),
                ]
            })
            .collect();
        for s in &d.summaries {
            out.extend([
                s.post_rate.map_or(u64::MAX, f64::to_bits),
                s.baseline.map_or(u64::MAX, f64::to_bits),
                s.post_mulige.to_bits(),
            ]);
        }
        out.extend([d.rows_read as u64, d.rows_ignored as u64]);
        out
    }

    /// The study read on 1 and 3 threads, sorted or not, equals the one built row by row from
    /// the sequential reader, bit for bit.
    #[test]
    fn the_study_is_the_same_on_one_thread_and_many() {
        for reverse in [false, true] {
            // About 2.5 MB: a few chunks.
            let (csv, units) = files(50_000, reverse);
            let rows = statistics::read_stats(csv.as_bytes(), statistics::StatsFormat::DvhCsv)
                .map(|r| r.expect("valid row"));
            let want = bits(&StudyData::new(windows(), units.clone(), rows).expect("study"));
            for threads in [1, 3] {
                let got = crate::on_threads(threads, || {
                    StudyData::from_stats_reader(windows(), units.clone(), csv.as_bytes())
                        .expect("study")
                });
                assert_eq!(bits(&got), want, "{threads} threads, reverse {reverse}");
            }
        }
    }

    /// Problems: the first ten in file order, all counted, whatever the chunks.
    #[test]
    fn problems_are_counted_and_the_first_are_shown_in_order() {
        let (csv, units) = files(30_000, false);
        let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
        for k in (1..lines.len()).step_by(1_000) {
            lines[k] = format!("{},2024,7,1,2,3", lines[k].split(',').next().unwrap_or(""));
        }
        let bad = lines.join("\n");
        let err =
            StudyData::from_stats_reader(windows(), units, bad.as_bytes()).expect_err("bad rows");
        let text = err.to_string();
        assert!(text.contains("240 problem(s)"), "{text}");
        assert!(text.contains("row 1,"), "{text}");
        assert!(!text.contains("row 10001,"), "{text}");
        assert!(text.contains("row 9001,"), "{text}");
    }
}
