//! The one way ia-rct writes JSON: every HTTP response body ([`Json`], the error envelope, the
//! masked responses) and every JSON file or listing the command line writes.
//!
//! Numbers keep full precision (serde_json's shortest round-trip form, so an estimate read back is
//! the same double); only negative zero is written as `0.0`, the same as positive zero, since a
//! `-0.0` (an empty sum, a zero times a negative) reads as a sign that is not there. Rounding is for
//! the tables and pages, never for JSON.

use std::io;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

/// A formatter that writes `-0.0` as `0.0` and everything else as the formatter it wraps.
struct NoNegativeZero<F>(F);

impl<F: Formatter> Formatter for NoNegativeZero<F> {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        // `-0.0 == 0.0`, so this maps only the zeros, and both to positive zero.
        let value = if value == 0.0 { 0.0 } else { value };
        self.0.write_f64(writer, value)
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        let value = if value == 0.0 { 0.0 } else { value };
        self.0.write_f32(writer, value)
    }

    // Every other method forwards, so the wrapped formatter's layout (pretty indentation) holds.
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

fn write<T: ?Sized + Serialize, F: Formatter>(
    value: &T,
    formatter: F,
) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, NoNegativeZero(formatter));
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// Compact JSON, `-0.0` written as `0.0`.
///
/// # Errors
/// The value's `Serialize` failed (a map with non-string keys).
pub fn to_vec<T: ?Sized + Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    write(value, CompactFormatter)
}

/// Compact JSON as a string, `-0.0` written as `0.0`: the canonical form results are hashed in.
///
/// # Errors
/// The value's `Serialize` failed (a map with non-string keys).
pub fn to_string<T: ?Sized + Serialize>(value: &T) -> serde_json::Result<String> {
    let bytes = to_vec(value)?;
    // serde_json writes only UTF-8.
    String::from_utf8(bytes).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// Indented JSON, `-0.0` written as `0.0`.
///
/// # Errors
/// The value's `Serialize` failed (a map with non-string keys).
pub fn to_string_pretty<T: ?Sized + Serialize>(value: &T) -> serde_json::Result<String> {
    let bytes = write(value, PrettyFormatter::new())?;
    // serde_json writes only UTF-8.
    String::from_utf8(bytes).map_err(|e| serde::ser::Error::custom(e.to_string()))
}

/// `axum::Json` for responses, written by [`to_vec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match to_vec(&self.0) {
            Ok(body) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            // What axum::Json does too: a body that cannot be written is a 500 in plain text
            // (it is never reached by ia-rct's types, whose maps have string keys).
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                e.to_string(),
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_zero_is_written_as_zero_and_every_other_number_round_trips() {
        let values: [f64; 7] = [
            -0.0,
            0.0,
            -0.23828365140967342,
            6.023127071337523e-08,
            1e300,
            -5e-324,
            0.1 + 0.2,
        ];
        let text = String::from_utf8(to_vec(&values).expect("json")).expect("utf-8");
        assert!(text.starts_with("[0.0,0.0,"), "{text}");
        assert!(!text.contains("-0.0,"), "{text}");
        let back: Vec<f64> = serde_json::from_str(&text).expect("parse");
        assert_eq!(back[0].to_bits(), 0.0f64.to_bits());
        for (got, want) in back.iter().zip(values).skip(1) {
            assert_eq!(got.to_bits(), want.to_bits(), "{text}");
        }
        // Nested and pretty: the same rule, the layout kept.
        let nested = serde_json::json!({"a": {"b": [-0.0, -1.5]}, "c": -0.0f32});
        let pretty = to_string_pretty(&nested).expect("json");
        assert_eq!(
            pretty,
            "{\n  \"a\": {\n    \"b\": [\n      0.0,\n      -1.5\n    ]\n  },\n  \"c\": 0.0\n}"
        );
        assert_eq!(
            pretty,
            serde_json::to_string_pretty(&nested)
                .expect("json")
                .replace("-0.0", "0.0")
        );
    }
}
