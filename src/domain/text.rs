//! The one rule for text the service accepts: a length limit in characters, and no characters that
//! are invisible or change how the text around them is shown.
//!
//! Refused everywhere: Unicode's control characters (general category Cc), its format characters
//! (Cf: bidirectional overrides and isolates such as U+202E, zero-width spaces and joiners, the soft
//! hyphen, the byte order mark, tag characters, …), and the line and paragraph separators (Zl U+2028,
//! Zp U+2029). A name with U+202E shows its text reversed in every list, log and audit row it reaches.
//!
//! - [`check_line`] is for names and other one-line text: no control character at all.
//! - [`check_free_text`] is for notes that may span lines: line feed, carriage return and tab are
//!   allowed, everything else above is refused.
//!
//! Both count characters (Unicode scalar values), not bytes, and do not trim: callers trim first.
//!
//! # Examples
//! ```
//! use ia_rct::domain::{TextError, check_free_text, check_line};
//! assert!(check_line("NAV Vestland", 200).is_ok());
//! assert!(matches!(check_line("abc\u{202E}fed", 200), Err(TextError::Forbidden { .. })));
//! assert!(matches!(check_line(&"x".repeat(201), 200), Err(TextError::TooLong { .. })));
//! assert!(check_free_text("line one\nline two", 1000).is_ok());
//! assert!(check_line("line one\nline two", 1000).is_err());
//! ```

use std::fmt;

/// The format characters (general category Cf) of Unicode 15.1, as inclusive ranges
/// (`DerivedGeneralCategory.txt`). Cc is [`char::is_control`].
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextError {
    /// Longer than allowed.
    TooLong {
        /// Its length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// It holds a character that is refused.
    Forbidden {
        /// The character.
        character: char,
        /// Its 1-based position, in characters.
        position: usize,
        /// Whether the field allows line breaks (for the message).
        multiline: bool,
    },
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::TooLong { chars, max } => {
                write!(f, "too long ({chars} characters); at most {max} characters")
            }
            TextError::Forbidden {
                character,
                position,
                multiline,
            } => {
                let allowed = if *multiline {
                    "; line breaks and tabs are allowed"
                } else {
                    ", nor line breaks or tabs"
                };
                write!(
                    f,
                    "contains {} (U+{:04X}) at character {position}; remove it (control, format and separator characters are not accepted{allowed})",
                    Kind(*character),
                    u32::from(*character)
                )
            }
        }
    }
}

impl std::error::Error for TextError {}

/// Whether `c` is a control (Cc) or format (Cf) character, or a line or paragraph separator.
pub fn is_forbidden(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

fn is_format(c: char) -> bool {
    let code = u32::from(c);
    FORMAT
        .binary_search_by(|&(lo, hi)| {
            if hi < code {
                std::cmp::Ordering::Less
            } else if lo > code {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// What kind of character it is, for messages.
struct Kind(char);

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            '\n' => "a line feed",
            '\r' => "a carriage return",
            '\t' => "a tab",
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' => {
                "a bidirectional control character"
            }
            '\u{2028}' => "a line separator",
            '\u{2029}' => "a paragraph separator",
            c if c.is_control() => "a control character",
            _ => "an invisible format character",
        };
        f.write_str(name)
    }
}

fn check(value: &str, max_chars: usize, multiline: bool) -> Result<(), TextError> {
    let mut chars = 0usize;
    for (index, c) in value.chars().enumerate() {
        chars = index + 1;
        let allowed = multiline && matches!(c, '\n' | '\r' | '\t');
        if !allowed && is_forbidden(c) {
            return Err(TextError::Forbidden {
                character: c,
                position: index + 1,
                multiline,
            });
        }
    }
    if chars > max_chars {
        return Err(TextError::TooLong {
            chars,
            max: max_chars,
        });
    }
    Ok(())
}

/// A one-line text (a name, a label): at most `max_chars` characters, none of them a control or
/// format character or a separator.
///
/// # Errors
/// [`TextError::Forbidden`] for the first refused character, else [`TextError::TooLong`].
pub fn check_line(value: &str, max_chars: usize) -> Result<(), TextError> {
    check(value, max_chars, false)
}

/// A free text that may span lines (a note): as [`check_line`], but line feed, carriage return and tab
/// are allowed.
///
/// # Errors
/// [`TextError::Forbidden`] for the first refused character, else [`TextError::TooLong`].
pub fn check_free_text(value: &str, max_chars: usize) -> Result<(), TextError> {
    check(value, max_chars, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_norwegian_text_passes() {
        assert_eq!(
            check_line("Bø kommune – helse og omsorg (Æ/Ø/Å)", 200),
            Ok(())
        );
        assert_eq!(check_line("", 10), Ok(()));
        assert_eq!(check_line("a b", 3), Ok(()));
        // Emoji without joiners and other scripts are fine.
        assert_eq!(check_line("Sámi giella 😀 中文", 200), Ok(()));
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        let ae = "æ".repeat(200); // 400 bytes
        assert_eq!(check_line(&ae, 200), Ok(()));
        assert_eq!(
            check_line(&format!("{ae}x"), 200),
            Err(TextError::TooLong {
                chars: 201,
                max: 200
            })
        );
        assert_eq!(
            check_free_text(&"x".repeat(3_000_000), 1000),
            Err(TextError::TooLong {
                chars: 3_000_000,
                max: 1000
            })
        );
    }

    #[test]
    fn every_format_and_control_character_is_refused() {
        for c in [
            '\u{202E}',
            '\u{202A}',
            '\u{2066}',
            '\u{2069}',
            '\u{200B}',
            '\u{200D}',
            '\u{200E}',
            '\u{00AD}',
            '\u{FEFF}',
            '\u{061C}',
            '\u{E0041}',
            '\u{1D173}',
            '\u{0000}',
            '\u{001B}',
            '\u{007F}',
            '\u{0085}',
            '\u{009F}',
            '\u{2028}',
            '\u{2029}',
        ] {
            let text = format!("ab{c}cd");
            match check_line(&text, 200) {
                Err(TextError::Forbidden {
                    character,
                    position,
                    ..
                }) => {
                    assert_eq!((character, position), (c, 3), "U+{:04X}", u32::from(c));
                }
                other => panic!("U+{:04X} gave {other:?}", u32::from(c)),
            }
            assert!(
                check_free_text(&text, 200).is_err(),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn neighbours_of_the_format_ranges_pass() {
        for c in [
            '\u{00AC}',
            '\u{00AE}',
            '\u{200A}',
            '\u{2010}',
            '\u{202F}',
            '\u{2065}',
            '\u{2070}',
            '\u{FEFE}',
            '\u{FFFC}',
            '\u{E0080}',
        ] {
            assert_eq!(
                check_line(&c.to_string(), 5),
                Ok(()),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn line_breaks_are_allowed_only_in_free_text() {
        for text in ["a\nb", "a\r\nb", "a\tb"] {
            assert_eq!(check_free_text(text, 10), Ok(()));
            assert!(matches!(
                check_line(text, 10),
                Err(TextError::Forbidden {
                    position: 2,
                    multiline: false,
                    ..
                })
            ));
        }
        assert!(check_free_text("a\u{202E}b", 10).is_err());
        assert!(check_free_text("a\u{0007}b", 10).is_err());
    }

    #[test]
    fn the_message_names_the_character() {
        let Err(error) = check_line("x\u{202E}y", 10) else {
            panic!("accepted");
        };
        let message = error.to_string();
        assert!(
            message.contains("U+202E")
                && message.contains("bidirectional")
                && message.contains("character 2"),
            "{message}"
        );
    }

    #[test]
    fn the_table_is_sorted_and_disjoint() {
        for pair in FORMAT.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
        }
    }
}
