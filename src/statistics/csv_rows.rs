//! DVH CSV, streamed: the header line is read first (to choose `,` or `;` and map the columns), then the
//! csv crate reads one record at a time. A record may not pull more than [`MAX_ROW_BYTES`] from the
//! input, so an unclosed quote or a file without line breaks cannot grow memory without bound.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read};

use crate::register::RowError;

use super::fields::{Cell, Field, Kind, RawRow, Shape};
use super::json::Json;
use super::{MAX_ROW_BYTES, error};

/// What a header column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    Known(Field),
    /// No name (Excel's trailing separator): ignored while its cells are blank.
    Unnamed,
}

/// What the csv reader reads through: fails once more than [`MAX_ROW_BYTES`] were pulled since the
/// last [`Capped::reset`], and notes where the line breaks are. The csv crate skips blank lines without
/// counting them, and a record's `position()` is where the previous one ended (before the skipped
/// lines), so rows are counted here.
struct Capped<R> {
    inner: R,
    pulled: usize,
    /// Bytes handed out so far.
    offset: u64,
    /// Whether the current line has a byte other than `\r`.
    line_has_content: bool,
    /// Line breaks handed out and not yet counted: their offset, and whether they end a blank line.
    newlines: VecDeque<(u64, bool)>,
    /// Line breaks counted so far.
    lines: usize,
}

impl<R> Capped<R> {
    fn new(inner: R) -> Capped<R> {
        Capped {
            inner,
            pulled: 0,
            offset: 0,
            line_has_content: false,
            newlines: VecDeque::new(),
            lines: 0,
        }
    }

    fn reset(&mut self) {
        self.pulled = 0;
    }

    /// The 1-based line of a record whose `position().byte()` is `start`: the lines before `start`,
    /// then the blank lines the csv crate skipped.
    fn line_at(&mut self, start: u64) -> usize {
        while let Some(&(offset, blank)) = self.newlines.front() {
            // `<=`: after `\r\n` the csv crate may place `start` on the `\n` itself.
            if offset <= start || blank {
                self.newlines.pop_front();
                self.lines += 1;
            } else {
                break;
            }
        }
        self.lines + 1
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pulled > MAX_ROW_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "more than {} MiB without a complete row (an unclosed quote, or not a CSV file?)",
                    MAX_ROW_BYTES / (1024 * 1024)
                ),
            ));
        }
        let n = self.inner.read(buf)?;
        let read = buf.get(..n).unwrap_or_default();
        let content = |part: &[u8]| part.iter().any(|&b| b != b'\r');
        let mut start = 0;
        for i in memchr::memchr_iter(b'\n', read) {
            let line = read.get(start..i).unwrap_or_default();
            let has_content = self.line_has_content || content(line);
            self.newlines
                .push_back((self.offset + i as u64, !has_content));
            self.line_has_content = false;
            start = i + 1;
        }
        if !self.line_has_content {
            self.line_has_content = content(read.get(start..).unwrap_or_default());
        }
        self.pulled += n;
        self.offset += n as u64;
        Ok(n)
    }
}

/// The data rows of a DVH CSV upload.
pub(super) struct CsvRows<R: Read> {
    kind: Kind,
    state: State<R>,
    /// Header problems, yielded before anything else; then the stream ends.
    header_errors: Vec<RowError>,
    last_row: usize,
}

enum State<R: Read> {
    /// The header is not read yet.
    Start(BufReader<R>),
    Reading {
        reader: Box<csv::Reader<Capped<BufReader<R>>>>,
        columns: Vec<Column>,
        names: Vec<String>,
        record: csv::ByteRecord,
        /// The separator, for messages.
        delimiter: u8,
    },
    Done,
}

impl<R: Read> CsvRows<R> {
    pub(super) fn new(input: R, kind: Kind) -> CsvRows<R> {
        CsvRows {
            kind,
            state: State::Start(BufReader::new(input)),
            header_errors: Vec::new(),
            last_row: 0,
        }
    }

    /// Reads and checks the header; on success the state becomes `Reading`.
    fn start(&mut self, mut input: BufReader<R>) {
        match read_header(&mut input, self.kind) {
            Ok(header) => self.state = State::reading(input, header, 0),
            Err(errors) => self.header_errors = errors,
        }
    }

    /// The data rows of an upload whose header was already read by [`read_header`], from `input`
    /// on, which starts on a line boundary after `lines_before` lines of data (blank ones included)
    /// and outside any quoted field: rows are numbered as if the upload had been read from its
    /// beginning.
    pub(super) fn resume(input: R, kind: Kind, header: Header, lines_before: usize) -> CsvRows<R> {
        CsvRows {
            kind,
            state: State::reading(BufReader::new(input), header, lines_before),
            header_errors: Vec::new(),
            last_row: lines_before,
        }
    }
}

/// A checked header: the separator, the names and what each column is.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub(super) columns: Vec<Column>,
    pub(super) names: Vec<String>,
    pub(super) delimiter: u8,
}

impl<R: Read> State<R> {
    fn reading(input: BufReader<R>, header: Header, lines_before: usize) -> State<R> {
        let mut capped = Capped::new(input);
        capped.lines = lines_before;
        let reader = csv::ReaderBuilder::new()
            .delimiter(header.delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(capped);
        State::Reading {
            reader: Box::new(reader),
            columns: header.columns,
            names: header.names,
            record: csv::ByteRecord::new(),
            delimiter: header.delimiter,
        }
    }
}

/// Reads and checks the header line of a DVH CSV upload of `kind`: the header, or its problems
/// (row 0) in header order. `input` is left at the start of the first data line.
pub(super) fn read_header<R: Read>(
    input: &mut BufReader<R>,
    kind: Kind,
) -> Result<Header, Vec<RowError>> {
    let (line, too_long) = match header_line(input) {
        Ok(read) => read,
        Err(e) => {
            return Err(vec![error(
                0,
                "",
                "",
                format!("the upload could not be read: {e}"),
            )]);
        }
    };
    if too_long {
        return Err(vec![error(
            0,
            "",
            "",
            format!(
                "the first line is longer than {} MiB; this is not a CSV file with a header row",
                MAX_ROW_BYTES / (1024 * 1024)
            ),
        )]);
    }
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&line);
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(vec![error(
            0,
            "",
            "",
            "the upload is empty; expected a header row (orgnr, arstall, kvartal, …) and one row per virksomhet and quarter",
        )]);
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(vec![error(
            0,
            "",
            "",
            "the header row is not UTF-8; save the file as UTF-8 (in Excel: \"CSV UTF-8\")",
        )]);
    };
    let delimiter = delimiter(text);
    let names: Vec<String> = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
        .records()
        .next()
        .and_then(Result::ok)
        .map(|record| record.iter().map(|f| f.trim().to_owned()).collect())
        .unwrap_or_default();
    let mut errors = Vec::new();
    let columns = header_columns(kind, &names, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Header {
        columns,
        names,
        delimiter,
    })
}

/// Maps header names to fields, recording unknown, repeated and missing columns in `errors`.
fn header_columns(kind: Kind, names: &[String], errors: &mut Vec<RowError>) -> Vec<Column> {
    let mut columns = Vec::with_capacity(names.len());
    let mut seen: BTreeMap<Field, &str> = BTreeMap::new();
    for name in names {
        if name.is_empty() {
            columns.push(Column::Unnamed);
            continue;
        }
        match Field::from_name(kind, Shape::Csv, name) {
            Some(field) => {
                if let Some(first) = seen.get(&field) {
                    let reason = if first.eq_ignore_ascii_case(name) {
                        format!("column `{name}` appears twice; keep one")
                    } else {
                        format!("columns `{first}` and `{name}` are the same field; keep one")
                    };
                    errors.push(error(0, name, name, reason));
                } else {
                    seen.insert(field, name);
                }
                columns.push(Column::Known(field));
            }
            None => {
                let reason = format!(
                    "unknown column `{name}`{}; {} (column names ignore case)",
                    Field::hint(kind, Shape::Csv, name),
                    Field::expected(kind, Shape::Csv)
                );
                errors.push(error(0, name, name, reason));
                columns.push(Column::Unnamed);
            }
        }
    }
    for field in Field::required(kind) {
        if !seen.contains_key(field) {
            let name = field.canonical(Shape::Csv);
            errors.push(error(
                0,
                &name,
                "",
                format!("missing column `{name}`; it is required"),
            ));
        }
    }
    columns
}

/// The first line, up to [`MAX_ROW_BYTES`]; `true` if it was longer.
fn header_line<B: BufRead>(input: &mut B) -> io::Result<(Vec<u8>, bool)> {
    let mut line = Vec::new();
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok((line, false));
        }
        let newline = chunk.iter().position(|&b| b == b'\n');
        let taken = newline.unwrap_or(chunk.len());
        if line.len() + taken > MAX_ROW_BYTES {
            return Ok((line, true));
        }
        line.extend_from_slice(chunk.get(..taken).unwrap_or_default());
        input.consume(taken + usize::from(newline.is_some()));
        if newline.is_some() {
            return Ok((line, false));
        }
    }
}

/// `;` if the header has more semicolons than commas outside quotes, else `,`.
fn delimiter(header: &str) -> u8 {
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

/// A row read: built by the fast path (with its row number), or raw for the full rules.
pub(super) enum Record<T> {
    Built(usize, T),
    Raw(RawRow),
}

/// `str::trim`, without its work when the ends are visible ASCII (no whitespace there).
pub(super) fn trim(text: &str) -> &str {
    match (text.as_bytes().first(), text.as_bytes().last()) {
        (Some(&first), Some(&last))
            if (0x21..0x7f).contains(&first) && (0x21..0x7f).contains(&last) =>
        {
            text
        }
        _ => text.trim(),
    }
}

/// The cells of one CSV record by field, trimmed (`str::trim`), for [`fields::stat_row_fast`]: `None`
/// where the column is absent or the cell blank.
pub(super) type FastCells<'a> = [Option<&'a str>; Field::SLOTS];

impl<R: Read> CsvRows<R> {
    /// Reads the next record that is not blank and has as many fields as the header: `Ok(row)`, an
    /// error naming the row, or `None` at the end.
    fn advance(&mut self) -> Option<Result<usize, RowError>> {
        if let State::Start(_) = self.state
            && let State::Start(input) = std::mem::replace(&mut self.state, State::Done)
        {
            self.start(input);
            self.header_errors.reverse(); // popped from the back, in header order
        }
        if let Some(e) = self.header_errors.pop() {
            return Some(Err(e));
        }
        let State::Reading {
            reader,
            columns,
            names,
            record,
            delimiter,
        } = &mut self.state
        else {
            return None;
        };
        loop {
            reader.get_mut().reset();
            match reader.read_byte_record(record) {
                Ok(false) => {
                    self.state = State::Done;
                    return None;
                }
                Ok(true) => {}
                Err(e) => {
                    let row = self.last_row + 1;
                    self.state = State::Done;
                    let reason = match e.kind() {
                        csv::ErrorKind::Io(io) => format!("the upload could not be read: {io}"),
                        _ => format!("the CSV could not be read: {e}"),
                    };
                    return Some(Err(error(row, "", "", reason)));
                }
            }
            // Lines are counted from the line after the header (row 1); blank lines count.
            let row = match record.position() {
                Some(position) => reader.get_mut().line_at(position.byte()),
                None => self.last_row + 1,
            };
            self.last_row = row;
            if record.iter().all(|f| f.trim_ascii().is_empty()) {
                continue; // `;;;` lines, as spreadsheets write them
            }
            if record.len() != columns.len() {
                let (field, reason) =
                    crate::register::field_count_problem(record.len(), names, *delimiter);
                let extra = record
                    .get(columns.len())
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                return Some(Err(error(row, &field, &extra, reason)));
            }
            return Some(Ok(row));
        }
    }

    /// The record just read by [`CsvRows::advance`] as a [`RawRow`], with every cell and problem.
    fn raw(&self, row: usize) -> RawRow {
        let mut raw = RawRow::new(row, Shape::Csv);
        let State::Reading {
            columns,
            names,
            record,
            ..
        } = &self.state
        else {
            return raw;
        };
        for ((bytes, column), name) in record.iter().zip(columns.iter()).zip(names.iter()) {
            let Ok(text) = std::str::from_utf8(bytes) else {
                raw.errors.push(error(
                    row,
                    name,
                    &String::from_utf8_lossy(bytes),
                    "not UTF-8; save the file as UTF-8 (in Excel: \"CSV UTF-8\")",
                ));
                continue;
            };
            match column {
                Column::Known(field) => raw.insert(
                    *field,
                    Cell {
                        name: name.clone(),
                        value: Json::String(text.to_owned()),
                    },
                ),
                Column::Unnamed if !text.trim().is_empty() => raw.errors.push(error(
                    row,
                    "",
                    text,
                    "a value in a column without a name in the header; name the column or remove the value",
                )),
                Column::Unnamed => {}
            }
        }
        raw
    }

    /// The record just read, through `fast` without building a [`RawRow`]; `None` when the record
    /// is not plain (not ASCII, a value under an unnamed column, a field without a slot) or `fast`
    /// finds anything to report, so that the caller takes the full path for its messages.
    fn fast<T>(&self, fast: fn(&FastCells<'_>) -> Option<T>) -> Option<T> {
        let State::Reading {
            columns, record, ..
        } = &self.state
        else {
            return None;
        };
        let mut cells: FastCells<'_> = [None; Field::SLOTS];
        // One UTF-8 check for the whole record: an ASCII record's fields are ASCII.
        if !record.as_slice().is_ascii() {
            return None;
        }
        let all = std::str::from_utf8(record.as_slice()).ok()?;
        for (i, column) in columns.iter().enumerate() {
            let text = trim(all.get(record.range(i)?)?);
            match column {
                Column::Known(field) => {
                    if !text.is_empty() {
                        *cells.get_mut(field.slot()?)? = Some(text);
                    }
                }
                Column::Unnamed if !text.is_empty() => return None,
                Column::Unnamed => {}
            }
        }
        fast(&cells)
    }

    /// The next row: its number and `fast`'s value when `fast` takes the record, else the [`RawRow`].
    pub(super) fn next_with<T>(
        &mut self,
        fast: Option<fn(&FastCells<'_>) -> Option<T>>,
    ) -> Option<Result<Record<T>, RowError>> {
        let row = match self.advance()? {
            Ok(row) => row,
            Err(e) => return Some(Err(e)),
        };
        if let Some(value) = fast.and_then(|f| self.fast(f)) {
            return Some(Ok(Record::Built(row, value)));
        }
        Some(Ok(Record::Raw(self.raw(row))))
    }
}
