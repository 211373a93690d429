//! Calendar quarters (kvartaler), the period of NAV's sickness statistics.

use std::fmt;
use std::iter::FusedIterator;
use std::ops::Sub;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// The first year a [`Quarter`] may have.
pub const FIRST_YEAR: i32 = 1990;
/// The last year a [`Quarter`] may have.
pub const LAST_YEAR: i32 = 2100;

/// One calendar quarter, e.g. `2024K1` (årstall 2024, kvartal 1).
///
/// Written `2024K1` (canonical, also on the wire); `2024k1`, `2024Q1` and `2024-Q1` are accepted on input,
/// and [`Quarter::new`] takes NAV's `årstall`/`kvartal` pair (`docs/data-formats.md`, "Quarters"). Years are
/// limited to 1990-2100 so that arithmetic stays meaningful. Quarters are ordered, and subtracting two
/// gives the number of quarters between them.
///
/// # Examples
/// ```
/// use ia_rct::domain::Quarter;
/// let q3: Quarter = "2024-Q3".parse().unwrap();
/// let k1 = Quarter::new(2025, 1).unwrap();
/// assert_eq!(k1 - q3, 2);
/// assert_eq!(q3.plus(2), Some(k1));
/// assert_eq!(k1.to_string(), "2025K1");
/// let window: Vec<String> = q3.through(k1).map(|q| q.to_string()).collect();
/// assert_eq!(window, ["2024K3", "2024K4", "2025K1"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quarter {
    // Field order matters: the derived `Ord` compares year first.
    year: u16,
    quarter: u8,
}

/// Why a string or an (årstall, kvartal) pair is not a quarter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuarterError {
    /// The text is not written like a quarter.
    #[error(
        "`{0}` is not a quarter; expected e.g. 2024K1 (also accepted: 2024k1, 2024Q1, 2024-Q1)"
    )]
    Format(String),
    /// The year or the quarter number is out of range.
    #[error(
        "årstall {year}, kvartal {quarter} is not a quarter; expected kvartal 1-4 and årstall 1990-2100"
    )]
    OutOfRange {
        /// The year given.
        year: i64,
        /// The quarter number given.
        quarter: i64,
    },
}

impl Quarter {
    /// The quarter `quarter` (1-4) of `year` (1990-2100), e.g. from NAV's `årstall` and `kvartal` fields.
    ///
    /// # Errors
    /// [`QuarterError::OutOfRange`] if `quarter` is not 1-4 or `year` is not 1990-2100.
    ///
    /// # Examples
    /// ```
    /// use ia_rct::domain::Quarter;
    /// assert_eq!(Quarter::new(2024, 2).unwrap().to_string(), "2024K2");
    /// assert!(Quarter::new(2024, 5).is_err());
    /// ```
    pub fn new(year: i32, quarter: i32) -> Result<Quarter, QuarterError> {
        let out_of_range = || QuarterError::OutOfRange {
            year: i64::from(year),
            quarter: i64::from(quarter),
        };
        if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
            return Err(out_of_range());
        }
        let year = u16::try_from(year).map_err(|_| out_of_range())?;
        let quarter = u8::try_from(quarter)
            .ok()
            .filter(|q| (1..=4).contains(q))
            .ok_or_else(out_of_range)?;
        Ok(Quarter { year, quarter })
    }

    /// The year (årstall).
    pub fn year(&self) -> i32 {
        i32::from(self.year)
    }

    /// The quarter number (kvartal), 1-4.
    pub fn quarter(&self) -> u8 {
        self.quarter
    }

    /// The quarter `n` quarters later (earlier if `n` is negative).
    ///
    /// Returns `None` if the result falls outside 1990-2100.
    ///
    /// # Examples
    /// ```
    /// use ia_rct::domain::Quarter;
    /// let q: Quarter = "2024K1".parse().unwrap();
    /// assert_eq!(q.plus(-1).unwrap().to_string(), "2023K4");
    /// assert_eq!(q.plus(4).unwrap().to_string(), "2025K1");
    /// assert_eq!(q.plus(1_000), None);
    /// ```
    pub fn plus(self, n: i32) -> Option<Quarter> {
        self.index().checked_add(n).and_then(Quarter::from_index)
    }

    /// The last day of the quarter.
    ///
    /// # Examples
    /// ```
    /// use ia_rct::domain::Quarter;
    /// let q: Quarter = "2024K1".parse().unwrap();
    /// assert_eq!(q.last_day().to_string(), "2024-03-31");
    /// let q: Quarter = "2024K4".parse().unwrap();
    /// assert_eq!(q.last_day().to_string(), "2024-12-31");
    /// ```
    pub fn last_day(self) -> chrono::NaiveDate {
        let (year, month) = if self.quarter() == 4 {
            (self.year() + 1, 1)
        } else {
            (self.year(), 3 * u32::from(self.quarter()) + 1)
        };
        chrono::NaiveDate::from_ymd_opt(year, month, 1)
            .and_then(|d| d.pred_opt())
            .unwrap_or(chrono::NaiveDate::MAX)
    }

    /// The last day of a window of `quarters` quarters starting at `first` (of `first` itself
    /// when `quarters` is 0 or the window runs past 2100).
    ///
    /// # Examples
    /// ```
    /// use ia_rct::domain::Quarter;
    /// let r: Quarter = "2025K1".parse().unwrap();
    /// assert_eq!(Quarter::last_day_of_window(r, 12).to_string(), "2027-12-31");
    /// ```
    pub fn last_day_of_window(first: Quarter, quarters: u32) -> chrono::NaiveDate {
        let n = i32::try_from(quarters)
            .unwrap_or(i32::MAX)
            .saturating_sub(1)
            .max(0);
        first.plus(n).unwrap_or(first).last_day()
    }

    /// The consecutive quarters from `self` through `last`, both included; empty if `last < self`.
    ///
    /// # Examples
    /// ```
    /// use ia_rct::domain::Quarter;
    /// let last: Quarter = "2024K2".parse().unwrap();
    /// // NAV's "siste fire kvartaler": the published quarter and the three before it.
    /// let first = last.plus(-3).unwrap();
    /// assert_eq!(first.through(last).len(), 4);
    /// assert_eq!(first.through(last).next().unwrap().to_string(), "2023K3");
    /// ```
    pub fn through(self, last: Quarter) -> Quarters {
        Quarters {
            front: self.index(),
            back: last.index(),
        }
    }

    /// Quarters since year 0, quarter 1: `year * 4 + quarter - 1`.
    fn index(self) -> i32 {
        i32::from(self.year) * 4 + i32::from(self.quarter) - 1
    }

    /// The inverse of [`Quarter::index`]; `None` outside 1990-2100.
    fn from_index(index: i32) -> Option<Quarter> {
        Quarter::new(index.div_euclid(4), index.rem_euclid(4) + 1).ok()
    }
}

/// The number of quarters from `rhs` to `self`: `2025K1 - 2024K3 == 2`, negative if `self` is earlier.
impl Sub for Quarter {
    type Output = i32;

    fn sub(self, rhs: Quarter) -> i32 {
        self.index() - rhs.index()
    }
}

impl FromStr for Quarter {
    type Err = QuarterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let format = || QuarterError::Format(s.to_owned());
        let trimmed = s.trim();
        let (year, rest) = trimmed.split_at_checked(4).ok_or_else(format)?;
        let rest = rest.strip_prefix('-').unwrap_or(rest);
        let quarter = rest.strip_prefix(['K', 'k', 'Q', 'q']).ok_or_else(format)?;
        if !year.bytes().all(|b| b.is_ascii_digit())
            || quarter.len() != 1
            || !quarter.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format());
        }
        let year: i32 = year.parse().map_err(|_| format())?;
        let quarter: i32 = quarter.parse().map_err(|_| format())?;
        Quarter::new(year, quarter)
    }
}

impl TryFrom<String> for Quarter {
    type Error = QuarterError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// From NAV's (`årstall`, `kvartal`) pair; see [`Quarter::new`].
impl TryFrom<(i32, i32)> for Quarter {
    type Error = QuarterError;
    fn try_from((year, quarter): (i32, i32)) -> Result<Self, Self::Error> {
        Quarter::new(year, quarter)
    }
}

impl From<Quarter> for String {
    fn from(quarter: Quarter) -> Self {
        quarter.to_string()
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}K{}", self.year, self.quarter)
    }
}

impl utoipa::PartialSchema for Quarter {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{4}-?[KkQq][1-4]$"))
            .description(Some(
                "Quarter, written 2024K1 on output; 2024k1, 2024Q1 and 2024-Q1 accepted on input",
            ))
            .examples(["2024K1"])
            .into()
    }
}

impl utoipa::ToSchema for Quarter {}

/// Consecutive quarters in order, from [`Quarter::through`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarters {
    /// Index of the next quarter from the front.
    front: i32,
    /// Index of the next quarter from the back (inclusive); empty when `back < front`.
    back: i32,
}

impl Iterator for Quarters {
    type Item = Quarter;

    fn next(&mut self) -> Option<Quarter> {
        if self.front > self.back {
            return None;
        }
        let quarter = Quarter::from_index(self.front);
        self.front += 1;
        quarter
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = usize::try_from(self.back - self.front + 1).unwrap_or(0);
        (len, Some(len))
    }
}

impl DoubleEndedIterator for Quarters {
    fn next_back(&mut self) -> Option<Quarter> {
        if self.front > self.back {
            return None;
        }
        let quarter = Quarter::from_index(self.back);
        self.back -= 1;
        quarter
    }
}

impl ExactSizeIterator for Quarters {}

impl FusedIterator for Quarters {}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quarter {
        s.parse().expect("test quarter parses")
    }

    #[test]
    fn accepted_spellings_parse_to_the_same_quarter() {
        for text in [
            "2024K1", "2024k1", "2024Q1", "2024q1", "2024-Q1", "2024-K1", " 2024K1 ",
        ] {
            assert_eq!(q(text), Quarter::new(2024, 1).expect("valid"), "{text}");
        }
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(q("2024-Q3").to_string(), "2024K3");
        assert_eq!(q("1990q1").to_string(), "1990K1");
    }

    #[test]
    fn malformed_text_is_a_format_error() {
        for bad in [
            "",
            "2024",
            "2024K",
            "2024K12",
            "2024 K1",
            "2024--Q1",
            "24K1",
            "20241",
            "2024X1",
            "K1 2024",
            "2024K+1",
            "+024K1",
            "2024Kø",
            "ååååK1",
            "2024-1",
        ] {
            assert_eq!(
                bad.parse::<Quarter>(),
                Err(QuarterError::Format(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (year, quarter) in [
            (2024, 0),
            (2024, 5),
            (2024, -1),
            (1989, 4),
            (2101, 1),
            (0, 1),
            (i32::MAX, 1),
        ] {
            assert!(
                matches!(
                    Quarter::new(year, quarter),
                    Err(QuarterError::OutOfRange { .. })
                ),
                "{year} {quarter}"
            );
        }
        assert!(matches!(
            "2024K5".parse::<Quarter>(),
            Err(QuarterError::OutOfRange { .. })
        ));
        assert!(matches!(
            "1989K4".parse::<Quarter>(),
            Err(QuarterError::OutOfRange { .. })
        ));
        assert!(Quarter::new(1990, 1).is_ok());
        assert!(Quarter::new(2100, 4).is_ok());
    }

    #[test]
    fn error_messages_say_what_is_expected() {
        let format = "24K1".parse::<Quarter>().expect_err("malformed");
        assert!(format.to_string().contains("`24K1`"), "{format}");
        assert!(format.to_string().contains("2024K1"), "{format}");
        let range = Quarter::new(2024, 5).expect_err("kvartal 5");
        assert!(range.to_string().contains("kvartal 5"), "{range}");
        assert!(range.to_string().contains("1-4"), "{range}");
    }

    #[test]
    fn quarters_are_ordered_by_year_then_quarter() {
        assert!(q("2024K4") < q("2025K1"));
        assert!(q("2024K1") < q("2024K2"));
        let mut list = vec![q("2025K1"), q("2023K4"), q("2024K2")];
        list.sort();
        assert_eq!(list, [q("2023K4"), q("2024K2"), q("2025K1")]);
    }

    #[test]
    fn difference_counts_quarters() {
        assert_eq!(q("2025K1") - q("2024K3"), 2);
        assert_eq!(q("2024K3") - q("2025K1"), -2);
        assert_eq!(q("2024K1") - q("2024K1"), 0);
        assert_eq!(q("2100K4") - q("1990K1"), 111 * 4 - 1);
    }

    #[test]
    fn plus_crosses_year_boundaries_and_stops_at_the_limits() {
        assert_eq!(q("2024K4").plus(1), Some(q("2025K1")));
        assert_eq!(q("2024K1").plus(-1), Some(q("2023K4")));
        assert_eq!(q("2024K2").plus(-8), Some(q("2022K2")));
        assert_eq!(q("2024K2").plus(0), Some(q("2024K2")));
        assert_eq!(q("2100K4").plus(1), None);
        assert_eq!(q("1990K1").plus(-1), None);
        assert_eq!(q("2024K1").plus(i32::MAX), None);
        assert_eq!(q("2024K1").plus(i32::MIN), None);
    }

    #[test]
    fn plus_and_difference_agree() {
        let base = q("2019K3");
        for n in -100..=100 {
            let moved = base.plus(n).expect("within range");
            assert_eq!(moved - base, n);
        }
    }

    #[test]
    fn through_lists_consecutive_quarters() {
        let all: Vec<Quarter> = q("2023K3").through(q("2024K2")).collect();
        assert_eq!(all, [q("2023K3"), q("2023K4"), q("2024K1"), q("2024K2")]);
        let back: Vec<Quarter> = q("2023K3").through(q("2024K2")).rev().collect();
        assert_eq!(back, [q("2024K2"), q("2024K1"), q("2023K4"), q("2023K3")]);
        assert_eq!(q("2024K1").through(q("2024K1")).count(), 1);
        assert_eq!(q("2024K2").through(q("2024K1")).count(), 0);
        assert_eq!(q("2024K2").through(q("2024K1")).len(), 0);
        assert_eq!(q("1990K1").through(q("2100K4")).len(), 444);
        assert_eq!(q("1990K1").through(q("2100K4")).count(), 444);
    }

    #[test]
    fn through_size_hint_shrinks_from_both_ends() {
        let mut it = q("2024K1").through(q("2024K4"));
        assert_eq!(it.len(), 4);
        it.next();
        it.next_back();
        assert_eq!(it.len(), 2);
        assert_eq!(it.next(), Some(q("2024K2")));
        assert_eq!(it.next_back(), Some(q("2024K3")));
        assert_eq!(it.len(), 0);
        assert_eq!(it.next(), None);
        assert_eq!(it.next_back(), None);
    }

    #[test]
    fn pair_constructor_matches_text() {
        assert_eq!(Quarter::try_from((2024, 3)), Ok(q("2024K3")));
        let k = q("2024K3");
        assert_eq!((k.year(), k.quarter()), (2024, 3));
    }

    #[test]
    fn serde_uses_the_canonical_string() {
        assert_eq!(
            serde_json::to_string(&q("2024Q1")).expect("serializes"),
            r#""2024K1""#
        );
        let back: Quarter = serde_json::from_str(r#""2024-Q1""#).expect("deserializes");
        assert_eq!(back, q("2024K1"));
        assert!(serde_json::from_str::<Quarter>(r#""2024K9""#).is_err());
    }
}
