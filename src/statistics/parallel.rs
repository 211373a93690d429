//! [`read_stats`](super::read_stats) on every core, for the register-scale data step of
//! `ia-rct estimate`: a reader thread cuts a DVH CSV upload into chunks at line boundaries, the
//! chunks are parsed in parallel (rayon), and the caller's per-chunk results are handed back in
//! chunk order. Every row is parsed by the same rules as the sequential reader and numbered as it
//! numbers them, so the rows, the problems and their order are exactly those of
//! [`read_stats`](super::read_stats), whatever the number of threads.
//!
//! A line boundary is a record boundary only outside quoted fields, so a chunk is parsed in
//! parallel only while the upload has no `"` at all (NAV's DVH export quotes nothing) and no line
//! longer than [`MAX_PLAIN_LINE`]; from the first chunk that has either, the rest of the upload
//! is read sequentially, by the sequential reader resumed at that line. JSON and metadata are
//! read sequentially too.

use std::io::{self, BufReader, Cursor, Read};
use std::ops::ControlFlow;
use std::sync::mpsc;

use rayon::prelude::*;

use crate::domain::Orgnr;
use crate::register::RowError;

use super::csv_rows::{self, Column, CsvRows, FastCells, Header};
use super::fields::{self, Field, Kind};
use super::{StatRow, StatsFormat};

/// Bytes per chunk (the last line of a chunk is completed from the next read).
const CHUNK_BYTES: usize = 1 << 20;

/// Chunks parsed in parallel at a time (and queued ahead by the reader thread). A constant, not
/// the number of threads: the results do not depend on it either way, since they are combined in
/// chunk order.
const BATCH: usize = 8;

/// The longest line parsed in a parallel chunk; a longer one sends the rest of the upload to the
/// sequential reader, which alone applies [`MAX_ROW_BYTES`](super::MAX_ROW_BYTES) exactly.
const MAX_PLAIN_LINE: usize = 64 * 1024;

/// The rows of one chunk (or of the part of an upload read sequentially), as
/// [`read_stats`](super::read_stats) yields them.
pub type StatRows<'a> = dyn Iterator<Item = Result<StatRow, RowError>> + 'a;

/// Reads the statistics rows of `reader` (in `format`) as [`read_stats`](super::read_stats) does,
/// on every core of the current rayon pool: `map` turns the rows of each chunk, in their order,
/// into a part, and `fold` receives the parts in chunk order (so the concatenation of what `map`
/// saw is exactly the sequential stream), while the next chunks are parsed. `fold` may stop the
/// reading with [`ControlFlow::Break`]. An I/O error of `reader` is reported as the sequential reader reports
/// it (a row problem, then the end).
pub fn read_stats_parallel<R, P, M, F>(reader: R, format: StatsFormat, map: M, mut fold: F)
where
    R: Read + Send,
    P: Send,
    M: Fn(&mut StatRows<'_>) -> P + Sync,
    F: FnMut(P) -> ControlFlow<()> + Send,
{
    if format != StatsFormat::DvhCsv {
        let _ = fold(map(&mut super::read_stats(reader, format)));
        return;
    }
    let mut input = BufReader::with_capacity(64 * 1024, reader);
    let header = match csv_rows::read_header(&mut input, Kind::Stats) {
        Ok(header) => header,
        Err(errors) => {
            let _ = fold(map(&mut errors.into_iter().map(Err)));
            return;
        }
    };
    let plain = PlainColumns::new(&header);
    std::thread::scope(|scope| {
        let (chunks, received) = mpsc::sync_channel::<Piece<R>>(BATCH);
        let (recycle, recycled) = mpsc::channel::<Vec<u8>>();
        scope.spawn(move || cut(input, &chunks, &recycled));
        let mut batch: Vec<(Vec<u8>, usize)> = Vec::with_capacity(BATCH);
        // The parts of the previous batch: folded while the next batch is parsed.
        let mut ready: Vec<P> = Vec::new();
        loop {
            let mut rest = None;
            for piece in received.iter().take(BATCH) {
                match piece {
                    Piece::Chunk {
                        bytes,
                        lines_before,
                    } => batch.push((bytes, lines_before)),
                    Piece::Rest {
                        head,
                        tail,
                        lines_before,
                    } => rest = Some((head, tail, lines_before)),
                }
            }
            let previous = std::mem::take(&mut ready);
            let (parts, flow) = rayon::join(
                || {
                    batch
                        .par_iter()
                        .map(|(bytes, lines_before)| {
                            map(&mut ChunkRows::new(bytes, &header, &plain, *lines_before))
                        })
                        .collect::<Vec<P>>()
                },
                || fold_in_order(&mut fold, previous),
            );
            for (bytes, _) in batch.drain(..) {
                let _ = recycle.send(bytes);
            }
            if flow.is_break() {
                return; // dropping `received` stops the reader thread
            }
            ready = parts;
            if (ready.is_empty() || rest.is_some())
                && fold_in_order(&mut fold, std::mem::take(&mut ready)).is_break()
            {
                return;
            }
            if let Some((head, tail, lines_before)) = rest {
                let rows = CsvRows::resume(
                    Cursor::new(head).chain(tail),
                    Kind::Stats,
                    header.clone(),
                    lines_before,
                );
                let _ = fold(map(&mut super::resumed_stats(rows)));
                return;
            }
            if ready.is_empty() {
                return; // the end of the upload
            }
        }
    });
}

/// Folds `parts` in their order until `fold` breaks.
fn fold_in_order<P>(fold: &mut impl FnMut(P) -> ControlFlow<()>, parts: Vec<P>) -> ControlFlow<()> {
    for part in parts {
        fold(part)?;
    }
    ControlFlow::Continue(())
}

/// What the reader thread hands over.
enum Piece<R> {
    /// Whole lines, without `"`, after `lines_before` lines of data.
    Chunk { bytes: Vec<u8>, lines_before: usize },
    /// The rest of the upload, for the sequential reader: `head` (starting on a line boundary
    /// after `lines_before` lines), then `tail`.
    Rest {
        head: Vec<u8>,
        tail: Tail<R>,
        lines_before: usize,
    },
}

/// The input after the bytes already cut, or the I/O error that stopped the cutting.
enum Tail<R> {
    Reader(BufReader<R>),
    Failed(Option<io::Error>),
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Tail::Reader(r) => r.read(buf),
            Tail::Failed(e) => match e.take() {
                Some(e) => Err(e),
                None => Ok(0),
            },
        }
    }
}

/// The reader thread: cuts `input` into chunks of whole lines and sends them in order, until the
/// end, a chunk that is not plain (then the rest goes as one [`Piece::Rest`]), an I/O error, or
/// the receiver hanging up.
fn cut<R: Read>(
    mut input: BufReader<R>,
    chunks: &mpsc::SyncSender<Piece<R>>,
    recycled: &mpsc::Receiver<Vec<u8>>,
) {
    let mut carry: Vec<u8> = Vec::new();
    let mut lines = 0usize;
    loop {
        let mut buf = recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES + MAX_PLAIN_LINE));
        buf.clear();
        buf.append(&mut carry);
        let eof = match fill(&mut input, &mut buf, CHUNK_BYTES) {
            Ok(eof) => eof,
            Err(e) => {
                let _ = chunks.send(Piece::Rest {
                    head: buf,
                    tail: Tail::Failed(Some(e)),
                    lines_before: lines,
                });
                return;
            }
        };
        if buf.is_empty() {
            return;
        }
        let end = if eof {
            Some(buf.len())
        } else {
            memchr::memrchr(b'\n', &buf).map(|i| i + 1)
        };
        let plain = end.and_then(|end| {
            let whole = buf.get(..end)?;
            if memchr::memchr(b'"', whole).is_some() {
                return None;
            }
            let (mut count, mut start) = (0usize, 0usize);
            for i in memchr::memchr_iter(b'\n', whole) {
                if i - start > MAX_PLAIN_LINE {
                    return None;
                }
                count += 1;
                start = i + 1;
            }
            (whole.len() - start <= MAX_PLAIN_LINE).then_some((end, count))
        });
        let Some((end, count)) = plain else {
            let _ = chunks.send(Piece::Rest {
                head: buf,
                tail: Tail::Reader(input),
                lines_before: lines,
            });
            return;
        };
        carry.extend_from_slice(buf.get(end..).unwrap_or_default());
        buf.truncate(end);
        let piece = Piece::Chunk {
            bytes: buf,
            lines_before: lines,
        };
        lines += count;
        if chunks.send(piece).is_err() || eof {
            return;
        }
    }
}

/// Reads into `buf` until it holds at least `want` bytes; `true` at the end of the input. The
/// bytes read before an error stay in `buf`.
fn fill<R: Read>(input: &mut R, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    let missing = want.saturating_sub(buf.len());
    let read = input.by_ref().take(missing as u64).read_to_end(buf)?;
    Ok(read < missing)
}

/// Each header column's cell slot for the fast path ([`FastCells`]).
struct PlainColumns(Vec<Slot>);

#[derive(Clone, Copy)]
enum Slot {
    Cell(usize),
    /// A column without a name: its cells must be blank.
    Unnamed,
    /// A field the fast path has no cell for: the record takes the full path.
    None,
}

impl PlainColumns {
    fn new(header: &Header) -> PlainColumns {
        PlainColumns(
            header
                .columns
                .iter()
                .map(|c| match c {
                    Column::Known(f) => f.slot().map_or(Slot::None, Slot::Cell),
                    Column::Unnamed => Slot::Unnamed,
                })
                .collect(),
        )
    }

    /// The row of one line (ASCII, without its line break and without `\r`, at which the csv
    /// crate would end a record) whose fields end at `ends` (each separator, then the end of the
    /// line), if the fast path takes it: as many fields as the header, exactly the cells
    /// [`CsvRows`]' fast path would see for the record, and its orgnr cell. `previous` is the
    /// last row's orgnr cell and value.
    fn row<'t>(
        &self,
        text: &'t str,
        ends: &[usize],
        previous: Option<(&str, Orgnr)>,
    ) -> Option<(StatRow, &'t str)> {
        if ends.len() != self.0.len() {
            return None;
        }
        let mut cells: FastCells<'_> = [None; Field::SLOTS];
        let mut start = 0;
        for (&end, slot) in ends.iter().zip(&self.0) {
            let cell = csv_rows::trim(text.get(start..end)?);
            start = end + 1;
            match slot {
                Slot::Cell(k) => {
                    if !cell.is_empty() {
                        *cells.get_mut(*k)? = Some(cell);
                    }
                }
                Slot::Unnamed if !cell.is_empty() => return None,
                Slot::Unnamed => {}
                Slot::None => return None,
            }
        }
        let orgnr = cells.get(Field::Orgnr.slot()?).copied().flatten()?;
        Some((fields::stat_row_fast_after(&cells, previous)?, orgnr))
    }
}

/// The rows of one chunk: line by line through the fast path, and from the first line it does
/// not take (a problem, a blank line, anything unusual) to the end of the chunk through the
/// sequential reader, resumed at that line.
struct ChunkRows<'a> {
    bytes: &'a [u8],
    /// The chunk as text when it is all ASCII (then no line needs its own check).
    ascii: Option<&'a str>,
    /// Whether the chunk has a `\r` anywhere.
    has_cr: bool,
    header: &'a Header,
    plain: &'a PlainColumns,
    /// The separators and line breaks of the chunk, in order (one pass for every line).
    breaks: memchr::Memchr2<'a>,
    /// The ends of the current line's fields, relative to the line.
    ends: Vec<usize>,
    /// The last row's orgnr cell and value.
    previous: Option<(&'a str, Orgnr)>,
    /// Where the next line starts.
    at: usize,
    /// Lines of data before `at`.
    lines: usize,
    slow: Option<super::Rows<&'a [u8], StatRow>>,
}

impl<'a> ChunkRows<'a> {
    fn new(
        bytes: &'a [u8],
        header: &'a Header,
        plain: &'a PlainColumns,
        lines_before: usize,
    ) -> ChunkRows<'a> {
        ChunkRows {
            bytes,
            ascii: if bytes.is_ascii() {
                std::str::from_utf8(bytes).ok()
            } else {
                None
            },
            has_cr: memchr::memchr(b'\r', bytes).is_some(),
            header,
            plain,
            breaks: memchr::memchr2_iter(b'\n', header.delimiter, bytes),
            ends: Vec::with_capacity(plain.0.len() + 1),
            previous: None,
            at: 0,
            lines: lines_before,
            slow: None,
        }
    }

    /// The current line's end (its `\n`, or the end of the chunk), with its fields' ends in
    /// `ends`.
    fn split_line(&mut self) -> usize {
        self.ends.clear();
        for i in self.breaks.by_ref() {
            if self.bytes.get(i) == Some(&b'\n') {
                self.ends.push(i - self.at);
                return i;
            }
            self.ends.push(i - self.at);
        }
        self.ends.push(self.bytes.len() - self.at);
        self.bytes.len()
    }

    /// The fast path's row for the line at `at..end` (without its `\n`), if it takes it.
    fn fast(&mut self, end: usize) -> Option<StatRow> {
        let mut line = self.bytes.get(self.at..end)?;
        if self.has_cr {
            // A `\r\n` ends the record at the `\r`; a `\r` anywhere else ends one too.
            if let Some(body) = line.strip_suffix(b"\r") {
                line = body;
                *self.ends.last_mut()? -= 1;
            }
            if memchr::memchr(b'\r', line).is_some() {
                return None;
            }
        }
        let text = match self.ascii {
            Some(all) => all.get(self.at..self.at + line.len())?,
            None if line.is_ascii() => std::str::from_utf8(line).ok()?,
            None => return None,
        };
        let (row, orgnr) = self.plain.row(text, &self.ends, self.previous)?;
        self.previous = Some((orgnr, row.orgnr));
        Some(row)
    }
}

impl Iterator for ChunkRows<'_> {
    type Item = Result<StatRow, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(slow) = &mut self.slow {
            return slow.next();
        }
        let rest = self.bytes.get(self.at..)?;
        if rest.is_empty() {
            return None;
        }
        let end = self.split_line();
        if let Some(row) = self.fast(end) {
            self.at = (end + 1).min(self.bytes.len());
            self.lines += 1;
            return Some(Ok(row));
        }
        let rows = CsvRows::resume(rest, Kind::Stats, self.header.clone(), self.lines);
        self.at = self.bytes.len();
        self.slow.insert(super::resumed_stats(rows)).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the sequential reader yields, as comparable text.
    fn sequential(bytes: &[u8]) -> Vec<String> {
        super::super::read_stats(bytes, StatsFormat::DvhCsv)
            .map(|r| format!("{r:?}"))
            .collect()
    }

    /// What the parallel reader yields with `threads` threads, chunk by chunk.
    fn parallel(bytes: &[u8], threads: usize) -> Vec<String> {
        let mut out = Vec::new();
        crate::on_threads(threads, || {
            read_stats_parallel(
                bytes,
                StatsFormat::DvhCsv,
                |rows| rows.map(|r| format!("{r:?}")).collect::<Vec<_>>(),
                |part| {
                    out.extend(part);
                    ControlFlow::Continue(())
                },
            );
        });
        out
    }

    /// Rows of `n` firm-quarters, with the given line `extra` after every `every`-th row.
    fn csv(n: usize, every: usize, extra: &str, header: &str) -> Vec<u8> {
        let mut s = format!("{header}\n");
        for i in 0..n {
            s.push_str(&format!(
                "800000009,{},{},{}.25,{}.5,{}\n",
                2019 + i / 4 % 10,
                i % 4 + 1,
                i % 97,
                100 + i % 13,
                5 + i % 7
            ));
            if every > 0 && i % every == every - 1 {
                s.push_str(extra);
            }
        }
        s.into_bytes()
    }

    const HEADER: &str = "orgnr,arstall,kvartal,taptedv,muligedv,antpers";

    #[test]
    fn many_chunks_equal_the_sequential_reader_on_1_and_3_threads() {
        // About 3 MB: several chunks, problems and blank lines in several of them.
        for extra in [
            "\n",
            "974760673,2024,5,1,2,3\n",
            ";;;\n",
            "x,y\n",
            "\r\n",
            "800000009,2019,1,ø,2,3\n",
        ] {
            let bytes = csv(90_000, 7_001, extra, HEADER);
            let want = sequential(&bytes);
            assert!(want.len() >= 90_000);
            assert_eq!(parallel(&bytes, 1), want, "{extra:?}");
            assert_eq!(parallel(&bytes, 3), want, "{extra:?}");
        }
        // Every line ended by `\r\n`, as Windows writes them.
        let text = String::from_utf8(csv(60_000, 9_000, "974760673,2024,1,x,2,3\n", HEADER))
            .expect("ascii")
            .replace('\n', "\r\n");
        let want = sequential(text.as_bytes());
        assert_eq!(parallel(text.as_bytes(), 2), want);
    }

    #[test]
    fn a_quote_or_a_long_line_sends_the_rest_to_the_sequential_reader() {
        let long = format!("974760673,2024,1,1,2,{}\n", "9".repeat(MAX_PLAIN_LINE + 10));
        for extra in [
            "974760673,\"2024\",1,1,2,3\n".to_owned(),
            "974760673,\"2024\n\",1,1,2,3\n".to_owned(),
            "\"unclosed,2024,1,1,2,3\n".to_owned(),
            long,
        ] {
            let bytes = csv(60_000, 25_000, &extra, HEADER);
            let want = sequential(&bytes);
            assert_eq!(parallel(&bytes, 2), want);
        }
        // No line break at all within a chunk.
        let mut bytes = format!("{HEADER}\n").into_bytes();
        bytes.extend(std::iter::repeat_n(b'1', 3 * CHUNK_BYTES));
        assert_eq!(parallel(&bytes, 2), sequential(&bytes));
    }

    #[test]
    fn header_problems_json_and_an_empty_body_are_as_sequential() {
        for bytes in [
            b"orgnr,arstall\n974760673,2024\n".to_vec(),
            b"".to_vec(),
            format!("{HEADER}\n").into_bytes(),
            HEADER.as_bytes().to_vec(),
            format!("\u{feff}{HEADER};x\r\n974760673;2024;1;1;2;3;\r\n").into_bytes(),
        ] {
            assert_eq!(parallel(&bytes, 2), sequential(&bytes));
        }
        let json = r#"[{"årstall":2024,"kvartal":2,"orgnr":"974760673","tapteDagsverk":"20.23",
                 "muligeDagsverk":"77.8716","antallPersoner":"40"}, {"orgnr": 1}]"#
            .as_bytes();
        let mut out = Vec::new();
        read_stats_parallel(
            json,
            StatsFormat::VirksomhetJson,
            |rows| rows.map(|r| format!("{r:?}")).collect::<Vec<_>>(),
            |part| {
                out.extend(part);
                ControlFlow::Continue(())
            },
        );
        let want: Vec<String> = super::super::read_stats(json, StatsFormat::VirksomhetJson)
            .map(|r| format!("{r:?}"))
            .collect();
        assert_eq!(out, want);
    }

    #[test]
    fn fold_can_stop_early() {
        let bytes = csv(50_000, 0, "", HEADER);
        let mut parts = 0;
        read_stats_parallel(
            &bytes[..],
            StatsFormat::DvhCsv,
            |rows| rows.count(),
            |_| {
                parts += 1;
                ControlFlow::Break(())
            },
        );
        assert_eq!(parts, 1);
    }

    /// Lines of a DVH CSV drawn from valid rows, problems and oddities.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (2019u32..2026, 1u32..5, 0u32..50, 50u32..90, 0u32..30)
                .prop_map(|(y, q, t, m, n)| format!("974760673;{y};{q};{t}.5;{m};{n}")),
            2 => (0usize..3, 1u32..5).prop_map(|(o, q)| {
                let orgnr = ["889640782", "800000009", " 889640782"][o];
                format!("{orgnr};2024;{q};1;2;3")
            }),
            1 => Just(String::new()),
            1 => Just(";;;;;".to_owned()),
            1 => Just("974760673;2024;1;1;2".to_owned()),
            1 => Just("974760673;2024;9;1;2;3".to_owned()),
            1 => Just("974760673;2024;1;1,5;2;3".to_owned()),
            1 => Just("974760674;2024;1;1;2;3".to_owned()),
            1 => Just(" 974760673 ; 2024;1;1;2;3\r".to_owned()),
            1 => Just("974760673;2024;1;1;2;3\r974760673;2024;2;1;2;3".to_owned()),
            1 => Just("974760673;2024;1;1;2;3;x".to_owned()),
            1 => Just("974760673;2024;1;é;2;3".to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any mix of lines, cut anywhere: the same rows and problems as the sequential reader.
        #[test]
        fn chunks_equal_the_sequential_reader(
            lines in prop::collection::vec(line(), 0..60),
            unnamed in any::<bool>(),
            orgnr_last in any::<bool>(),
        ) {
            let header = if unnamed { "orgnr;arstall;kvartal;taptedv;muligedv;antpers;" } else { "orgnr;arstall;kvartal;taptedv;muligedv;antpers" };
            // The orgnr column first or last (the fast path remembers the last orgnr cell).
            let rotate = |line: &str| -> String {
                match line.split_once(';') {
                    Some((first, rest)) if orgnr_last => format!("{rest};{first}"),
                    _ => line.to_owned(),
                }
            };
            let lines: Vec<String> = lines.iter().map(|l| rotate(l)).collect();
            let text = format!("{}\n{}\n", rotate(header), lines.join("\n"));
            let want = sequential(text.as_bytes());
            prop_assert_eq!(parallel(text.as_bytes(), 2), want.clone());
            // Every line in a chunk of its own, started anywhere a line starts.
            let header = csv_rows::read_header(&mut BufReader::new(text.as_bytes()), Kind::Stats);
            if let Ok(header) = header {
                let plain = PlainColumns::new(&header);
                let body = text.split_once('\n').map(|(_, b)| b).unwrap_or_default();
                let mut got = Vec::new();
                for (lines_before, line) in body.split_inclusive('\n').enumerate() {
                    got.extend(ChunkRows::new(line.as_bytes(), &header, &plain, lines_before).map(|r| format!("{r:?}")));
                }
                prop_assert_eq!(got, want);
            }
        }
    }
}
