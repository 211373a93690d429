//! Norwegian organisation numbers (organisasjonsnummer), checked with MOD11.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// MOD11 weights for the first eight digits, left to right (`docs/data-formats.md`, "Organisation numbers";
/// `docs/nav-data.md` §4.1).
const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];

/// A 9-digit organisation number whose last digit is a valid MOD11 check digit.
///
/// Parsing strips whitespace (`"974 760 673"`), then requires exactly 9 ASCII digits and a correct check
/// digit: with weights 3,2,7,6,5,4,3,2 on the first eight digits, check = 11 − (sum mod 11), where 11 gives
/// 0 and 10 means no valid number has those eight digits (`docs/data-formats.md`; `docs/nav-data.md` §4.1).
///
/// The first digit is not restricted: navikt/aap-domain also requires it to be 8 or 9, but NAV's
/// statistics code does not (`docs/nav-data.md` §4.1), so neither do we.
///
/// # Examples
/// ```
/// use ia_rct::domain::Orgnr;
/// let nav: Orgnr = "889 640 782".parse().unwrap();
/// assert_eq!(nav.to_string(), "889640782");
/// assert!("889640783".parse::<Orgnr>().is_err()); // wrong check digit
/// assert!("88964078".parse::<Orgnr>().is_err()); // 8 digits
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Orgnr(u32);

/// Why a string is not an organisation number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrgnrError {
    /// Not exactly 9 digits once whitespace is removed.
    #[error(
        "`{0}` is not an organisation number; expected 9 digits, e.g. 974760673 or 974 760 673"
    )]
    Format(String),
    /// 9 digits, but the last one is not the MOD11 check digit of the first eight.
    #[error(
        "`{0}` is not a valid organisation number; its last digit is not the MOD11 check digit of the first eight"
    )]
    CheckDigit(String),
}

impl Orgnr {
    /// The MOD11 check digit for the eight leading digits `prefix` (`0..=99_999_999`, leading zeros implied).
    ///
    /// Returns `None` if `prefix` has more than eight digits, or if the check digit would be 10, in which
    /// case no organisation number starts with these eight digits.
    ///
    /// # Examples
    /// ```
    /// use ia_rct::domain::Orgnr;
    /// assert_eq!(Orgnr::check_digit(97_476_067), Some(3)); // Brønnøysundregistrene, 974760673
    /// assert_eq!(Orgnr::check_digit(100_000_000), None); // nine digits
    /// ```
    pub fn check_digit(prefix: u32) -> Option<u32> {
        if prefix > 99_999_999 {
            return None;
        }
        let mut rest = prefix;
        let mut sum = 0;
        for weight in WEIGHTS.iter().rev() {
            sum += (rest % 10) * weight;
            rest /= 10;
        }
        match 11 - sum % 11 {
            11 => Some(0),
            10 => None,
            check => Some(check),
        }
    }

    /// The organisation number made of the eight leading digits `prefix` and their check digit.
    ///
    /// Returns `None` when `prefix` has more than eight digits or no check digit exists for it (about
    /// one prefix in eleven). Useful for generating synthetic firms.
    ///
    /// # Examples
    /// ```
    /// use ia_rct::domain::Orgnr;
    /// assert_eq!(Orgnr::from_prefix(88_964_078).map(|o| o.to_string()), Some("889640782".to_owned()));
    /// ```
    pub fn from_prefix(prefix: u32) -> Option<Orgnr> {
        Orgnr::check_digit(prefix).map(|check| Orgnr(prefix * 10 + check))
    }

    /// The organisation number whose integer value is `value` (as [`Orgnr::as_u32`] gives it, or a
    /// database that stores it as a number), if its check digit holds.
    ///
    /// # Examples
    /// ```
    /// use ia_rct::domain::Orgnr;
    /// assert_eq!(Orgnr::from_u32(974_760_673).map(|o| o.to_string()), Some("974760673".to_owned()));
    /// assert_eq!(Orgnr::from_u32(974_760_674), None);
    /// ```
    pub fn from_u32(value: u32) -> Option<Orgnr> {
        (value <= 999_999_999 && Orgnr::check_digit(value / 10) == Some(value % 10))
            .then_some(Orgnr(value))
    }

    /// The number as an integer (`974760673`); leading zeros are lost, so prefer [`fmt::Display`] for text.
    pub fn as_u32(&self) -> u32 {
        self.0
    }
}

impl FromStr for Orgnr {
    type Err = OrgnrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Nine ASCII digits, as NAV's files write them: the loop below without its whitespace filter.
        if let Ok(digits) = <&[u8; 9]>::try_from(s.as_bytes())
            && digits.iter().all(u8::is_ascii_digit)
        {
            let value = digits
                .iter()
                .fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
            return match Orgnr::check_digit(value / 10) {
                Some(check) if check == value % 10 => Ok(Orgnr(value)),
                _ => Err(OrgnrError::CheckDigit(s.to_owned())),
            };
        }
        let mut value: u32 = 0;
        let mut digits = 0;
        for c in s.chars().filter(|c| !c.is_whitespace()) {
            // `to_digit(10)` accepts ASCII 0-9 only.
            let Some(d) = c.to_digit(10) else {
                return Err(OrgnrError::Format(s.to_owned()));
            };
            digits += 1;
            if digits > 9 {
                return Err(OrgnrError::Format(s.to_owned()));
            }
            value = value * 10 + d;
        }
        if digits != 9 {
            return Err(OrgnrError::Format(s.to_owned()));
        }
        match Orgnr::check_digit(value / 10) {
            Some(check) if check == value % 10 => Ok(Orgnr(value)),
            _ => Err(OrgnrError::CheckDigit(s.to_owned())),
        }
    }
}

impl TryFrom<String> for Orgnr {
    type Error = OrgnrError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Orgnr> for String {
    fn from(orgnr: Orgnr) -> Self {
        orgnr.to_string()
    }
}

impl fmt::Display for Orgnr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:09}", self.0)
    }
}

impl utoipa::PartialSchema for Orgnr {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{9}$"))
            .description(Some("9-digit organisation number with a MOD11 check digit"))
            .examples(["974760673"])
            .into()
    }
}

impl utoipa::ToSchema for Orgnr {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_real_numbers_are_accepted() {
        // Brønnøysundregistrene and Arbeids- og velferdsetaten (NAV), as registered in Enhetsregisteret.
        for (text, value) in [("974760673", 974_760_673), ("889640782", 889_640_782)] {
            let orgnr: Orgnr = text.parse().expect("real orgnr parses");
            assert_eq!(orgnr.as_u32(), value);
            assert_eq!(orgnr.to_string(), text);
        }
    }

    #[test]
    fn check_digit_matches_a_hand_computation() {
        // 9·3 + 7·2 + 4·7 + 7·6 + 6·5 + 0·4 + 6·3 + 7·2 = 173; 173 mod 11 = 8; 11 − 8 = 3.
        assert_eq!(Orgnr::check_digit(97_476_067), Some(3));
        // 8·3 + 8·2 + 9·7 + 6·6 + 4·5 + 0·4 + 7·3 + 8·2 = 196; 196 mod 11 = 9; 11 − 9 = 2.
        assert_eq!(Orgnr::check_digit(88_964_078), Some(2));
        // Sum 0 → 11 − 0 = 11 → check digit 0.
        assert_eq!(Orgnr::check_digit(0), Some(0));
        // 1·2 = 2 (last weight); 11 − 2 = 9.
        assert_eq!(Orgnr::check_digit(1), Some(9));
        // 5·2 = 10; 11 − 10 = 1.
        assert_eq!(Orgnr::check_digit(5), Some(1));
        // 6·2 = 12; 12 mod 11 = 1; 11 − 1 = 10 → no valid check digit.
        assert_eq!(Orgnr::check_digit(6), None);
        assert_eq!(Orgnr::from_prefix(6), None);
    }

    #[test]
    fn spaces_are_stripped() {
        for text in [
            "974 760 673",
            " 974760673 ",
            "974\u{a0}760\u{a0}673",
            "9 7 4 7 6 0 6 7 3",
        ] {
            let orgnr: Orgnr = text.parse().expect("spaced orgnr parses");
            assert_eq!(orgnr.to_string(), "974760673");
        }
    }

    #[test]
    fn wrong_length_and_non_digits_are_format_errors() {
        for bad in [
            "",
            "   ",
            "97476067",
            "9747606730",
            "97476067x",
            "974-760-673",
            "974.760.673",
            "+974760673",
            "９７４７６０６７３", // full-width digits
            "974760673974760673",
        ] {
            assert_eq!(
                bad.parse::<Orgnr>(),
                Err(OrgnrError::Format(bad.to_owned())),
                "{bad:?} should be a format error"
            );
        }
    }

    #[test]
    fn wrong_check_digits_are_check_digit_errors() {
        for bad in [
            "974760670",
            "974760674",
            "889640781",
            "987654321",
            "000000060",
        ] {
            assert_eq!(
                bad.parse::<Orgnr>(),
                Err(OrgnrError::CheckDigit(bad.to_owned())),
                "{bad} should be a check-digit error"
            );
        }
    }

    #[test]
    fn error_messages_name_the_value() {
        let format = "12345".parse::<Orgnr>().expect_err("too short");
        assert!(format.to_string().contains("`12345`"), "{format}");
        let check = "974760670".parse::<Orgnr>().expect_err("bad check digit");
        assert!(check.to_string().contains("`974760670`"), "{check}");
        assert!(check.to_string().contains("check digit"), "{check}");
    }

    #[test]
    fn exactly_one_last_digit_is_valid_for_each_prefix_with_a_check_digit() {
        for prefix in [97_476_067, 88_964_078, 12_345_678, 0] {
            let valid = (0..10)
                .filter(|d| format!("{prefix:08}{d}").parse::<Orgnr>().is_ok())
                .count();
            assert_eq!(valid, 1, "prefix {prefix:08}");
        }
    }

    #[test]
    fn from_prefix_round_trips_through_parse_for_many_prefixes() {
        // A deterministic spread over the whole 8-digit range plus the edges.
        let mut prefixes: Vec<u32> = (0..20_000u32)
            .map(|i| i.wrapping_mul(4_999_999) % 100_000_000)
            .collect();
        prefixes.extend([0, 1, 99_999_999, 80_000_000, 99_999_998]);
        let mut some = 0;
        let mut none = 0;
        for prefix in prefixes {
            match Orgnr::from_prefix(prefix) {
                Some(orgnr) => {
                    some += 1;
                    let text = orgnr.to_string();
                    assert_eq!(text.len(), 9);
                    assert!(text.starts_with(&format!("{prefix:08}")));
                    assert_eq!(text.parse::<Orgnr>(), Ok(orgnr), "{text}");
                }
                None => {
                    none += 1;
                    // No last digit makes a valid number.
                    for d in 0..10 {
                        let text = format!("{prefix:08}{d}");
                        assert!(text.parse::<Orgnr>().is_err(), "{text}");
                    }
                }
            }
        }
        // About one prefix in eleven has remainder 1, i.e. no check digit.
        assert!(none > 0 && some > 8 * none, "some = {some}, none = {none}");
    }

    #[test]
    fn prefixes_with_more_than_eight_digits_are_refused() {
        assert_eq!(Orgnr::from_prefix(100_000_000), None);
        assert_eq!(Orgnr::from_prefix(u32::MAX), None);
    }

    #[test]
    fn leading_zeros_are_kept_in_display() {
        let orgnr = Orgnr::from_prefix(1).expect("prefix 1 has check digit 9");
        assert_eq!(orgnr.to_string(), "000000019");
        assert_eq!("000000019".parse::<Orgnr>(), Ok(orgnr));
    }

    #[test]
    fn orders_numerically() {
        let a: Orgnr = "889640782".parse().expect("valid");
        let b: Orgnr = "974760673".parse().expect("valid");
        assert!(a < b);
    }

    #[test]
    fn serde_uses_the_nine_digit_string() {
        let orgnr: Orgnr = "974760673".parse().expect("valid");
        assert_eq!(
            serde_json::to_string(&orgnr).expect("serializes"),
            r#""974760673""#
        );
        let back: Orgnr = serde_json::from_str(r#""974 760 673""#).expect("deserializes");
        assert_eq!(back, orgnr);
        assert!(serde_json::from_str::<Orgnr>(r#""974760670""#).is_err());
    }
}
