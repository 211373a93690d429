//! JSON rows, streamed: a JSON array is cut into its top-level elements by a byte scanner, NDJSON into
//! lines, and each element is parsed on its own by a small parser that keeps number tokens as written.
//!
//! Why not `serde_json::Value`: without serde_json's `float_roundtrip` / `arbitrary_precision` features
//! (we may not add them) a number token is converted by serde_json's fast path, which can be one ulp
//! off, and the token itself is lost; NAV's dagsverk must be parsed from the decimal string with Rust's
//! correctly rounded `f64` parser (`docs/nav-data.md` §1.3, BigDecimal "parsed from the raw token").
//! Keeping members in order also lets validation report a duplicated key, which a map would hide.

use std::fmt;
use std::io::{self, BufRead};

use crate::register::RowError;

use super::{MAX_ROW_BYTES, error, shown};

/// Deepest nesting accepted inside one row (NAV's rows need 3).
const MAX_DEPTH: usize = 32;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    /// A number token exactly as written (checked against JSON's number grammar).
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Members in the order written; a repeated key is kept so validation can report it.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// What kind of value this is, for "expected …, got …" messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "true/false",
            Json::Number(_) => "a number",
            Json::String(_) => "text",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// The value as shown in an error: strings and numbers as written, the rest as compact JSON.
    pub(super) fn shown(&self) -> String {
        match self {
            Json::String(s) | Json::Number(s) => shown(s),
            other => shown(&other.to_string()),
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Number(n) => f.write_str(n),
            Json::String(s) => write_string(f, s),
            Json::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Json::Object(members) => {
                f.write_str("{")?;
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_string(f, key)?;
                    write!(f, ":{value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// Parses one complete JSON value (surrounding whitespace allowed); on an error also the path to the
/// value where parsing stopped: keys joined by `.`, array positions as `[i]`
/// (`tapteDagsverkPerVarighet[1].varighet`), empty when it stopped outside any member.
///
/// # Errors
/// A message naming what is wrong and the 1-based byte position within `bytes`, and the path.
pub(super) fn parse_with_path(bytes: &[u8]) -> Result<Json, (String, String)> {
    let mut parser = Parser {
        bytes,
        pos: 0,
        path: Vec::new(),
    };
    let fail = |parser: &Parser<'_>, reason: String| (reason, parser.path());
    parser.ws();
    let value = match parser.value(0) {
        Ok(value) => value,
        Err(reason) => return Err(fail(&parser, reason)),
    };
    parser.ws();
    if parser.pos < bytes.len() {
        return Err(fail(
            &parser,
            parser.error("unexpected text after the value"),
        ));
    }
    Ok(value)
}

/// A step into a value, for [`parse_with_path`].
enum Step {
    Key(String),
    Index(usize),
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where the parser is: pushed on entering a member or element, popped when it is complete.
    path: Vec<Step>,
}

impl Parser<'_> {
    fn path(&self) -> String {
        let mut out = String::new();
        for step in &self.path {
            match step {
                Step::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        match self.peek() {
            None => format!("{what}; the text ends early (byte {})", self.pos + 1),
            Some(b) if b.is_ascii_graphic() => {
                format!("{what} at byte {}, found `{}`", self.pos + 1, char::from(b))
            }
            Some(b) => format!("{what} at byte {}, found byte 0x{b:02x}", self.pos + 1),
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("nested more than {MAX_DEPTH} levels deep")));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        let end = self.pos + word.len();
        if self.bytes.get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(value)
        } else {
            Err(self.error("expected a value (true, false, null, a number, text in \"quotes\", an object or an array)"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, String> {
        self.pos += 1; // `{`
        let mut members = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key in \"quotes\""));
            }
            let key = self.string()?;
            self.path.push(Step::Key(key.clone()));
            self.ws();
            self.expect(b':', "expected `:` after the key")?;
            self.ws();
            let value = self.value(depth + 1)?;
            self.path.pop();
            members.push((key, value));
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                _ => return Err(self.error("expected `,` or `}` after a value in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, String> {
        self.pos += 1; // `[`
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.ws();
            self.path.push(Step::Index(items.len()));
            items.push(self.value(depth + 1)?);
            self.path.pop();
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]` after a value in an array")),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1; // `"`
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return Err(self.error("text in quotes is not closed"));
                }
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                Some(b) if b < 0x20 => {
                    return Err(self.error(
                        "control character inside text in quotes (write a line break as \\n)",
                    ));
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| {
            self.pos = start;
            self.error("text in quotes is not UTF-8")
        })
    }

    /// After a backslash.
    fn escape(&mut self) -> Result<char, String> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let high = self.hex4()?;
                return match high {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(self.error("unpaired surrogate in a \\u escape"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("unpaired surrogate in a \\u escape"));
                        }
                        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
                    }
                    0xDC00..=0xDFFF => Err(self.error("unpaired surrogate in a \\u escape")),
                    _ => char::from_u32(high).ok_or_else(|| self.error("invalid \\u escape")),
                };
            }
            _ => return Err(self.error("unknown escape after `\\`")),
        };
        self.pos += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.error("expected 4 hex digits after \\u"))?;
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, kept as written.
    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("expected a digit in the number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.error("expected a digit after the decimal point"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.error("expected a digit in the exponent"));
            }
            self.digits();
        }
        let token = self
            .bytes
            .get(start..self.pos)
            .and_then(|t| std::str::from_utf8(t).ok())
            .unwrap_or_default();
        Ok(Json::Number(token.to_owned()))
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }
}

/// JSON's whitespace.
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The layout of a JSON upload, known after its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Not started: BOM and leading whitespace not yet read.
    Start,
    /// Inside `[...]`, before the next element.
    Array,
    /// One value per line.
    Ndjson,
    /// Finished (end of input, or a problem that makes the rest unreadable).
    Done,
}

/// The top-level objects of a JSON upload, one at a time, each with its row: the element's 1-based
/// position in an array, or its line in NDJSON. Memory is bounded by [`MAX_ROW_BYTES`] per element.
pub(super) struct Elements<B> {
    input: B,
    layout: Layout,
    /// Array: index of the last element started. NDJSON: line number of the last line read.
    row: usize,
    /// Newlines before the first value (so NDJSON rows are line numbers).
    leading_lines: usize,
    buf: Vec<u8>,
    stack: Vec<u8>,
    /// A problem found after the array's closing `]`, yielded after the last element.
    trailing: Option<RowError>,
}

/// What [`Elements`] hands on: an object and its row, or a problem (row-level or final).
pub(super) type Element = Result<(usize, Vec<(String, Json)>), RowError>;

impl<B: BufRead> Elements<B> {
    pub(super) fn new(input: B) -> Elements<B> {
        Elements {
            input,
            layout: Layout::Start,
            row: 0,
            leading_lines: 0,
            buf: Vec::new(),
            stack: Vec::new(),
            trailing: None,
        }
    }

    /// Ends the stream after this problem.
    fn fatal(&mut self, row: usize, value: &str, reason: impl Into<String>) -> Option<Element> {
        self.layout = Layout::Done;
        self.buf = Vec::new();
        Some(Err(error(row, "", value, reason)))
    }

    fn io_error(&mut self, e: &io::Error) -> Option<Element> {
        let row = self.row;
        self.fatal(row, "", format!("the upload could not be read: {e}"))
    }

    /// Skips whitespace, counting newlines; returns the next byte without consuming it.
    fn skip_ws(&mut self) -> io::Result<Option<u8>> {
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            let skipped = buf.iter().take_while(|&&b| is_ws(b)).count();
            let newlines = buf
                .get(..skipped)
                .unwrap_or_default()
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            let next = buf.get(skipped).copied();
            self.input.consume(skipped);
            self.leading_lines += newlines;
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    fn start(&mut self) -> Option<Element> {
        // A UTF-8 byte order mark, read byte by byte so a short first read cannot split it.
        match self.input.fill_buf() {
            Ok(buf) if buf.first() == Some(&0xEF) => {
                for expected in [0xEF, 0xBB, 0xBF] {
                    match self.input.fill_buf() {
                        Ok(buf) if buf.first() == Some(&expected) => self.input.consume(1),
                        Ok(_) => {
                            return self.fatal(
                                0,
                                "",
                                "not JSON: the file starts with byte 0xEF but not with a UTF-8 byte order mark",
                            );
                        }
                        Err(e) => return self.io_error(&e),
                    }
                }
            }
            Ok(_) => {}
            Err(e) => return self.io_error(&e),
        }
        match self.skip_ws() {
            Ok(Some(b'[')) => {
                self.input.consume(1);
                self.layout = Layout::Array;
                None
            }
            Ok(Some(b'{')) => {
                self.layout = Layout::Ndjson;
                self.row = self.leading_lines;
                None
            }
            Ok(Some(b)) => {
                let found = if b.is_ascii_graphic() {
                    format!("`{}`", char::from(b))
                } else {
                    format!("byte 0x{b:02x}")
                };
                self.fatal(
                    0,
                    "",
                    format!(
                        "not JSON rows: expected an array (`[{{...}}, ...]`) or one object per line (NDJSON), but the file starts with {found}"
                    ),
                )
            }
            Ok(None) => self.fatal(
                0,
                "",
                "the upload is empty; expected a JSON array of rows or one object per line",
            ),
            Err(e) => self.io_error(&e),
        }
    }

    /// The next element of the array: scans to the `,` or `]` that ends it at depth 0, outside strings.
    fn next_in_array(&mut self) -> Option<Element> {
        self.row += 1;
        let row = self.row;
        self.buf.clear();
        self.stack.clear();
        let (mut in_string, mut escaped, mut too_large) = (false, false, false);
        let closing = loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) => return self.io_error(&e),
            };
            if chunk.is_empty() {
                let value = String::from_utf8_lossy(&self.buf).into_owned();
                // Where the element's text stops: the key whose value is cut off.
                let path = match parse_with_path(&self.buf) {
                    Err((_, path)) => path,
                    Ok(_) => String::new(),
                };
                let reason = format!(
                    "the JSON array ends without its closing `]`{}; the file looks truncated, so nothing after this point can be read",
                    stopped_in(&path)
                );
                self.layout = Layout::Done;
                self.buf = Vec::new();
                return Some(Err(error(row, &path, value.trim(), reason)));
            }
            let mut end = None;
            let mut mismatch = None;
            for (i, &b) in chunk.iter().enumerate() {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => {
                        if self.stack.len() >= MAX_DEPTH {
                            mismatch = Some(format!(
                                "nested more than {MAX_DEPTH} levels deep; this is not a file of NAV rows"
                            ));
                            break;
                        }
                        self.stack.push(b);
                    }
                    b'}' | b']' => match self.stack.pop() {
                        Some(open) if (open == b'{') == (b == b'}') => {}
                        Some(open) => {
                            mismatch = Some(format!(
                                "`{}` closes a `{}`; the brackets do not match, so nothing after this point can be read",
                                char::from(b),
                                char::from(open)
                            ));
                            break;
                        }
                        None if b == b']' => {
                            end = Some((i, true));
                            break;
                        }
                        None => {
                            mismatch = Some(
                                "`}` without a matching `{`; nothing after this point can be read"
                                    .to_owned(),
                            );
                            break;
                        }
                    },
                    b',' if self.stack.is_empty() => {
                        end = Some((i, false));
                        break;
                    }
                    _ => {}
                }
            }
            let taken = match (end, &mismatch) {
                (Some((i, _)), _) => i,
                (None, Some(_)) => 0,
                (None, None) => chunk.len(),
            };
            if !too_large {
                if self.buf.len() + taken > MAX_ROW_BYTES {
                    too_large = true;
                    self.buf = Vec::new();
                } else {
                    self.buf
                        .extend_from_slice(chunk.get(..taken).unwrap_or_default());
                }
            }
            if let Some(reason) = mismatch {
                let value = String::from_utf8_lossy(&self.buf).into_owned();
                return self.fatal(row, value.trim(), reason);
            }
            match end {
                Some((_, closing)) => {
                    self.input.consume(taken + 1);
                    break closing;
                }
                None => self.input.consume(taken),
            }
        };

        let element = std::mem::take(&mut self.buf);
        let blank = element.iter().all(|&b| is_ws(b));
        if closing {
            // The array is over: only whitespace may follow.
            self.layout = Layout::Done;
            match self.skip_ws() {
                Ok(None) => {}
                Ok(Some(_)) => {
                    self.trailing = Some(error(
                        0,
                        "",
                        "",
                        "unexpected text after the array's closing `]`; upload one array per file",
                    ));
                }
                Err(e) => {
                    self.trailing = Some(error(
                        0,
                        "",
                        "",
                        format!("the upload could not be read: {e}"),
                    ));
                }
            }
            if blank && row == 1 {
                return self.trailing.take().map(Err); // `[]`
            }
        }
        if too_large {
            return Some(Err(error(
                row,
                "",
                "",
                format!(
                    "this element is larger than {} MiB; a row of NAV's statistics is a few hundred bytes",
                    MAX_ROW_BYTES / (1024 * 1024)
                ),
            )));
        }
        if blank {
            return Some(Err(error(
                row,
                "",
                "",
                "empty element: two commas in a row, or a comma before `]`",
            )));
        }
        Some(object(row, &element, false))
    }

    /// The next non-blank line of NDJSON.
    fn next_line(&mut self) -> Option<Element> {
        loop {
            self.row += 1;
            self.buf.clear();
            let mut too_large = false;
            let mut read_any = false;
            loop {
                let chunk = match self.input.fill_buf() {
                    Ok(chunk) => chunk,
                    Err(e) => return self.io_error(&e),
                };
                if chunk.is_empty() {
                    break;
                }
                read_any = true;
                let newline = chunk.iter().position(|&b| b == b'\n');
                let taken = newline.unwrap_or(chunk.len());
                if !too_large {
                    if self.buf.len() + taken > MAX_ROW_BYTES {
                        too_large = true;
                        self.buf = Vec::new();
                    } else {
                        self.buf
                            .extend_from_slice(chunk.get(..taken).unwrap_or_default());
                    }
                }
                self.input.consume(taken + usize::from(newline.is_some()));
                if newline.is_some() {
                    break;
                }
            }
            if !read_any {
                self.layout = Layout::Done;
                return None;
            }
            if too_large {
                return Some(Err(error(
                    self.row,
                    "",
                    "",
                    format!(
                        "this line is longer than {} MiB; a row of NAV's statistics is a few hundred bytes",
                        MAX_ROW_BYTES / (1024 * 1024)
                    ),
                )));
            }
            if self.buf.iter().all(|&b| is_ws(b)) {
                continue; // blank lines are skipped but counted
            }
            let line = std::mem::take(&mut self.buf);
            return Some(object(self.row, &line, true));
        }
    }
}

/// Parses an element (an array's, or an NDJSON line) and requires an object.
fn object(row: usize, bytes: &[u8], line: bool) -> Element {
    let snippet = || String::from_utf8_lossy(bytes).trim().to_owned();
    match parse_with_path(bytes) {
        Ok(Json::Object(members)) => Ok((row, members)),
        Ok(other) => Err(error(
            row,
            "",
            &other.shown(),
            format!(
                "expected an object with one row's keys, got {}",
                other.kind()
            ),
        )),
        Err((reason, path)) => {
            let hint = if line && reason.contains("ends early") {
                "; in NDJSON each line holds one whole object (put a pretty-printed object inside an array `[...]`)"
            } else {
                ""
            };
            Err(error(
                row,
                &path,
                &snippet(),
                format!("not valid JSON: {reason}{}{hint}", stopped_in(&path)),
            ))
        }
    }
}

/// `" (parsing stopped at `path`)"`, or nothing without a path.
fn stopped_in(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" (parsing stopped at `{path}`)")
    }
}

impl<B: BufRead> Iterator for Elements<B> {
    type Item = Element;

    fn next(&mut self) -> Option<Element> {
        loop {
            match self.layout {
                Layout::Start => {
                    if let Some(item) = self.start() {
                        return Some(item);
                    }
                }
                Layout::Array => return self.next_in_array(),
                Layout::Ndjson => return self.next_line(),
                Layout::Done => return self.trailing.take().map(Err),
            }
        }
    }
}
