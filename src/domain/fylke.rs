//! Norwegian counties (fylker) in the numbering in force from 2024-01-01.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One county: its 2-digit code and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fylke {
    /// The 2-digit code, e.g. `"46"`.
    pub code: &'static str,
    /// The county's name, e.g. `"Vestland"`.
    pub name: &'static str,
}

/// The 15 fylker from 2024-01-01 (NAV's `fylker.json`; see `docs/nav-data.md` §5), in code order.
pub const FYLKER: [Fylke; 15] = [
    Fylke {
        code: "03",
        name: "Oslo",
    },
    Fylke {
        code: "11",
        name: "Rogaland",
    },
    Fylke {
        code: "15",
        name: "Møre og Romsdal",
    },
    Fylke {
        code: "18",
        name: "Nordland",
    },
    Fylke {
        code: "31",
        name: "Østfold",
    },
    Fylke {
        code: "32",
        name: "Akershus",
    },
    Fylke {
        code: "33",
        name: "Buskerud",
    },
    Fylke {
        code: "34",
        name: "Innlandet",
    },
    Fylke {
        code: "39",
        name: "Vestfold",
    },
    Fylke {
        code: "40",
        name: "Telemark",
    },
    Fylke {
        code: "42",
        name: "Agder",
    },
    Fylke {
        code: "46",
        name: "Vestland",
    },
    Fylke {
        code: "50",
        name: "Trøndelag",
    },
    Fylke {
        code: "55",
        name: "Troms",
    },
    Fylke {
        code: "56",
        name: "Finnmark",
    },
];

/// A valid 2-digit fylke code (2024 numbering).
///
/// # Examples
/// ```
/// use ia_rct::domain::FylkeCode;
/// let vestland: FylkeCode = "46".parse().unwrap();
/// assert_eq!(vestland.as_str(), "46");
/// assert_eq!(vestland.name(), "Vestland");
/// assert!("54".parse::<FylkeCode>().is_err()); // Troms og Finnmark, split in 2024
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FylkeCode(u8);

/// Why a string is not a fylke code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a fylke code; expected one of 03, 11, 15, 18, 31, 32, 33, 34, 39, 40, 42, 46, 50, 55, 56 (2024 numbering)"
)]
pub struct FylkeCodeError(pub String);

impl FylkeCode {
    /// The code as written by NAV, with a leading zero (`"03"`).
    pub fn as_str(&self) -> &'static str {
        FYLKER[usize::from(self.0)].code
    }

    /// The county's name.
    pub fn name(&self) -> &'static str {
        FYLKER[usize::from(self.0)].name
    }
}

impl FromStr for FylkeCode {
    type Err = FylkeCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        FYLKER
            .iter()
            .position(|f| f.code == trimmed)
            .and_then(|i| u8::try_from(i).ok())
            .map(FylkeCode)
            .ok_or_else(|| FylkeCodeError(s.to_owned()))
    }
}

impl TryFrom<String> for FylkeCode {
    type Error = FylkeCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<FylkeCode> for String {
    fn from(code: FylkeCode) -> Self {
        code.as_str().to_owned()
    }
}

impl fmt::Display for FylkeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_round_trips() {
        for fylke in FYLKER {
            let code: FylkeCode = fylke.code.parse().expect("listed code parses");
            assert_eq!(code.as_str(), fylke.code);
            assert_eq!(code.name(), fylke.name);
        }
    }

    #[test]
    fn pre_2024_and_malformed_codes_are_refused() {
        for bad in ["54", "30", "38", "3", "003", "", "4 6", "xx"] {
            assert!(bad.parse::<FylkeCode>().is_err(), "{bad} should be refused");
        }
    }
}
