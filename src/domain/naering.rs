//! Industry and sector: næringskoder (SN2007 / SN2025), NAV's sektor codes and the IA bransjeprogram groups.
//!
//! Sources: `docs/nav-data.md` §3 (NAV's `Bransje.kt` in navikt/ia-felles, pia's `Næringskode.kt` and
//! `Sektor.kt`) and `docs/data-formats.md` §1.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

// ---------------------------------------------------------------------------------------------------------
// Næringskode
// ---------------------------------------------------------------------------------------------------------

/// A 5-digit næringskode (næringsundergruppe) in the Standard for næringsgruppering (SN).
///
/// Accepted as `88.911` (Brønnøysund's form) or `88911` (DVH's form), the two forms pia accepts
/// (`docs/nav-data.md` §3.3); surrounding whitespace is ignored. Displayed and serialized as `88.911`.
/// The code alone does not say whether it is SN2007 or SN2025: the same digits can mean different
/// industries in the two (see [`Bransje::of`]), so keep the [`NaeringStandard`] alongside it.
///
/// # Examples
/// ```
/// use ia_rct::domain::Naeringskode;
/// let kode: Naeringskode = "88911".parse().unwrap();
/// assert_eq!(kode.to_string(), "88.911");
/// assert_eq!(kode.as_str(), "88911");
/// assert_eq!(kode.naering(), "88");
/// assert_eq!(kode.group(), "889");
/// assert_eq!(kode.class(), "8891");
/// assert!("88.91".parse::<Naeringskode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Naeringskode([u8; 5]);

/// Why a string is not a næringskode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a næringskode; expected 5 digits written 88.911 or 88911")]
pub struct NaeringskodeError(pub String);

impl Naeringskode {
    /// Fia's placeholder `00.000` "Uoppgitt" for a unit without a næringskode (`docs/nav-data.md` §3.3).
    pub const UOPPGITT: Naeringskode = Naeringskode(*b"00000");

    /// The five digits without the dot (`"88911"`), as DVH and NAV's bransje lists write them.
    pub fn as_str(&self) -> &str {
        self.prefix(5).unwrap_or_default()
    }

    /// The 2-digit næring (NACE division), e.g. `"88"` for `88.911`.
    pub fn naering(&self) -> &str {
        self.prefix(2).unwrap_or_default()
    }

    /// The 3-digit prefix (NACE group), e.g. `"889"` for `88.911`.
    pub fn group(&self) -> &str {
        self.prefix(3).unwrap_or_default()
    }

    /// The 4-digit prefix (NACE class), e.g. `"8891"` for `88.911`.
    pub fn class(&self) -> &str {
        self.prefix(4).unwrap_or_default()
    }

    /// The first `len` digits, for `len` in 1..=5; `None` otherwise.
    ///
    /// # Examples
    /// ```
    /// use ia_rct::domain::Naeringskode;
    /// let kode: Naeringskode = "49.311".parse().unwrap();
    /// assert_eq!(kode.prefix(4), Some("4931"));
    /// assert_eq!(kode.prefix(6), None);
    /// ```
    pub fn prefix(&self, len: usize) -> Option<&str> {
        if len == 0 {
            return None;
        }
        // Always ASCII digits, so `from_utf8` cannot fail.
        self.0.get(..len).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Whether this is the `00.000` "Uoppgitt" placeholder.
    pub fn is_uoppgitt(&self) -> bool {
        *self == Naeringskode::UOPPGITT
    }
}

impl FromStr for Naeringskode {
    type Err = NaeringskodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || NaeringskodeError(s.to_owned());
        let bytes = s.trim().as_bytes();
        let digits: [u8; 5] = match bytes {
            [a, b, b'.', c, d, e] | [a, b, c, d, e] => [*a, *b, *c, *d, *e],
            _ => return Err(error()),
        };
        if digits.iter().all(u8::is_ascii_digit) {
            Ok(Naeringskode(digits))
        } else {
            Err(error())
        }
    }
}

impl TryFrom<String> for Naeringskode {
    type Error = NaeringskodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Naeringskode> for String {
    fn from(kode: Naeringskode) -> Self {
        kode.to_string()
    }
}

impl fmt::Display for Naeringskode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rest = self.as_str().get(2..).unwrap_or_default();
        write!(f, "{}.{}", self.naering(), rest)
    }
}

impl utoipa::PartialSchema for Naeringskode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^[0-9]{2}\.?[0-9]{3}$"))
            .description(Some(
                "5-digit næringskode; written 88.911 on output, 88911 also accepted on input",
            ))
            .examples(["88.911"])
            .into()
    }
}

impl utoipa::ToSchema for Naeringskode {}

// ---------------------------------------------------------------------------------------------------------
// NaeringStandard
// ---------------------------------------------------------------------------------------------------------

/// Which version of the Standard for næringsgruppering a [`Naeringskode`] is written in.
///
/// NAV's statistics have used SN2007; NAV added SN2025 lists to its bransje definitions in 2025
/// (`docs/nav-data.md` §3.1).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NaeringStandard {
    /// SN2007 (NACE Rev. 2).
    Sn2007,
    /// SN2025 (NACE Rev. 2.1).
    Sn2025,
}

/// Why a string is not a næring standard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a næring standard; expected sn2007 or sn2025")]
pub struct NaeringStandardError(pub String);

impl NaeringStandard {
    /// Both standards, oldest first.
    pub const ALL: &'static [NaeringStandard] = &[NaeringStandard::Sn2007, NaeringStandard::Sn2025];

    /// The name as stored and sent (`"sn2007"`, `"sn2025"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            NaeringStandard::Sn2007 => "sn2007",
            NaeringStandard::Sn2025 => "sn2025",
        }
    }
}

impl FromStr for NaeringStandard {
    type Err = NaeringStandardError;

    /// Accepts `sn2007` / `sn2025` in any case (so also SSB's `SN2007`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        NaeringStandard::ALL
            .iter()
            .copied()
            .find(|n| n.as_str().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| NaeringStandardError(s.to_owned()))
    }
}

impl fmt::Display for NaeringStandard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Sektor
// ---------------------------------------------------------------------------------------------------------

/// NAV's sector of a virksomhet: `1` STATLIG, `2` KOMMUNAL, `3` PRIVAT, `0` UKJENT
/// (`docs/data-formats.md` §1; `docs/nav-data.md` §3.4, pia's `Sektor.kt`).
///
/// Parsed from the code or the name (names in any case). Serialized as the name (`"STATLIG"`), as in
/// NAV's metadata export; deserialized from a code, a name, or a code given as a JSON number.
///
/// **Legacy code 9 FYLKESKOMMUNAL is refused**, with its own error ([`SektorError::LegacyFylkeskommunal`]).
/// It existed only in NAV's archived statistics API (`docs/nav-data.md` §3.4); neither the current
/// statistics (pia) nor Fia has it, and `docs/data-formats.md` §1 lists only 0-3. Mapping it silently to
/// KOMMUNAL would change a stratum behind the uploader's back, so we ask them to recode. (**inference:**
/// pia maps Brreg's institusjonell sektorkode 6500, kommuneforvaltningen, which also holds the
/// fylkeskommuner, to KOMMUNAL, so `2` is the natural recoding.)
///
/// # Examples
/// ```
/// use ia_rct::domain::Sektor;
/// assert_eq!("2".parse::<Sektor>().unwrap(), Sektor::Kommunal);
/// assert_eq!("privat".parse::<Sektor>().unwrap(), Sektor::Privat);
/// assert_eq!(Sektor::Statlig.code(), "1");
/// assert_eq!(Sektor::Statlig.to_string(), "STATLIG");
/// assert!("9".parse::<Sektor>().is_err()); // legacy FYLKESKOMMUNAL
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "SektorWire", into = "String")]
pub enum Sektor {
    /// `1` STATLIG, "Statlig forvaltning".
    Statlig,
    /// `2` KOMMUNAL, "Kommunal forvaltning".
    Kommunal,
    /// `3` PRIVAT, "Privat og offentlig næringsvirksomhet".
    Privat,
    /// `0` UKJENT.
    Ukjent,
}

/// Why a string is not a sektor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SektorError {
    /// Neither a code 0-3 nor one of the names.
    #[error(
        "`{0}` is not a sektor; expected 1 (STATLIG), 2 (KOMMUNAL), 3 (PRIVAT) or 0 (UKJENT), as code or name"
    )]
    Unknown(String),
    /// NAV's retired code 9 FYLKESKOMMUNAL.
    #[error(
        "`{0}` is the retired sektor 9 FYLKESKOMMUNAL, which NAV no longer uses; recode it (fylkeskommuner are normally 2, KOMMUNAL)"
    )]
    LegacyFylkeskommunal(String),
}

impl Sektor {
    /// Every sektor, in code order 1, 2, 3, 0 as NAV lists them.
    pub const ALL: &'static [Sektor] = &[
        Sektor::Statlig,
        Sektor::Kommunal,
        Sektor::Privat,
        Sektor::Ukjent,
    ];

    /// NAV's 1-digit code (`"1"`, `"2"`, `"3"`, `"0"`).
    pub fn code(&self) -> &'static str {
        match self {
            Sektor::Statlig => "1",
            Sektor::Kommunal => "2",
            Sektor::Privat => "3",
            Sektor::Ukjent => "0",
        }
    }

    /// NAV's enum name (`"STATLIG"`, `"KOMMUNAL"`, `"PRIVAT"`, `"UKJENT"`), as stored and sent.
    pub fn as_str(&self) -> &'static str {
        match self {
            Sektor::Statlig => "STATLIG",
            Sektor::Kommunal => "KOMMUNAL",
            Sektor::Privat => "PRIVAT",
            Sektor::Ukjent => "UKJENT",
        }
    }

    /// NAV's description (pia `Sektor.kt`); UKJENT has none there, so `"Ukjent"`.
    pub fn description(&self) -> &'static str {
        match self {
            Sektor::Statlig => "Statlig forvaltning",
            Sektor::Kommunal => "Kommunal forvaltning",
            Sektor::Privat => "Privat og offentlig næringsvirksomhet",
            Sektor::Ukjent => "Ukjent",
        }
    }
}

impl FromStr for Sektor {
    type Err = SektorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if let Some(sektor) = Sektor::ALL
            .iter()
            .copied()
            .find(|x| x.code() == trimmed || x.as_str().eq_ignore_ascii_case(trimmed))
        {
            return Ok(sektor);
        }
        if trimmed == "9" || trimmed.eq_ignore_ascii_case("FYLKESKOMMUNAL") {
            return Err(SektorError::LegacyFylkeskommunal(s.to_owned()));
        }
        Err(SektorError::Unknown(s.to_owned()))
    }
}

/// What a sektor may look like on the wire: a string, or a bare JSON number (NAV's numbers may be either,
/// `docs/data-formats.md` §2).
#[derive(Deserialize)]
#[serde(untagged)]
enum SektorWire {
    Text(String),
    Code(u64),
}

impl TryFrom<SektorWire> for Sektor {
    type Error = SektorError;
    fn try_from(wire: SektorWire) -> Result<Self, Self::Error> {
        match wire {
            SektorWire::Text(s) => s.parse(),
            SektorWire::Code(n) => n.to_string().parse(),
        }
    }
}

impl From<Sektor> for String {
    fn from(sektor: Sektor) -> Self {
        sektor.as_str().to_owned()
    }
}

impl fmt::Display for Sektor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl utoipa::PartialSchema for Sektor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Sektor::ALL.iter().map(|s| s.as_str())))
            .description(Some(
                "NAV sektor; sent as the name, accepted as name or code (1 STATLIG, 2 KOMMUNAL, 3 PRIVAT, 0 UKJENT)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Sektor {}

// ---------------------------------------------------------------------------------------------------------
// Bransje
// ---------------------------------------------------------------------------------------------------------

/// An IA bransjeprogram group, derived from a [`Naeringskode`] and its [`NaeringStandard`].
///
/// The first seven variants are exactly NAV's `Bransje` enum in navikt/ia-felles (`docs/nav-data.md`
/// §3.1), with its split and names: the programme "Rutebuss og persontrafikk" is NAV's `TRANSPORT`, and
/// "Bygg og anlegg" is two groups, `BYGG` (næring 41) and `ANLEGG` (næring 42) (`docs/trial-design.md`
/// §2.2 lists the seven programmes).
///
/// [`Bransje::LeverandorindustriOljeGass`] is the seventh *programme* of `docs/trial-design.md`
/// §2.2, but NAV's code has no definition of it in **either** standard (`docs/nav-data.md` §0 and
/// §8 item 5; the IA-avtale working group's report, *IA-avtalen 2019-2022: Erfaringskartlegging*,
/// 2022, notes that even Statistikkforum had to clarify which NACE industries belong to it,
/// `docs/trial-design.md` §2.2). We do not invent a code list, so [`Bransje::of`] never returns it: it exists so that a firm can
/// be placed in it explicitly (e.g. from an upload column) once the trial defines the list.
/// [`Bransje::AnnenNaering`] is everything else.
///
/// # Examples
/// ```
/// use ia_rct::domain::{Bransje, NaeringStandard, Naeringskode};
/// let kode: Naeringskode = "85.100".parse().unwrap();
/// // 85.100 is barnehager in SN2025 but førskoleundervisning in SN2007.
/// assert_eq!(Bransje::of(&kode, NaeringStandard::Sn2025), Bransje::Barnehager);
/// assert_eq!(Bransje::of(&kode, NaeringStandard::Sn2007), Bransje::AnnenNaering);
/// assert_eq!(Bransje::Barnehager.as_str(), "barnehager");
/// ```
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Bransje {
    /// NAV `BARNEHAGER` "Barnehager".
    Barnehager,
    /// NAV `NÆRINGSMIDDELINDUSTRI` "Næringsmiddelindustri": all of næring 10.
    Naeringsmiddelindustri,
    /// NAV `SYKEHUS` "Sykehus".
    Sykehus,
    /// NAV `SYKEHJEM` "Sykehjem".
    Sykehjem,
    /// NAV `TRANSPORT` "Transport": the bransjeprogram "Rutebuss og persontrafikk".
    Transport,
    /// NAV `BYGG` "Bygg": all of næring 41 (half of the programme "Bygg og anlegg").
    Bygg,
    /// NAV `ANLEGG` "Anlegg": all of næring 42 (half of the programme "Bygg og anlegg").
    Anlegg,
    /// The programme "Leverandørindustrien (olje og gass)"; no code list in NAV's code, so never derived.
    LeverandorindustriOljeGass,
    /// Any other næring.
    AnnenNaering,
}

/// Why a string is not a bransje.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a bransje; expected barnehager, naeringsmiddelindustri, sykehus, sykehjem, transport, bygg, anlegg, leverandorindustri_olje_gass or annen_naering (NAV's names such as BARNEHAGER are also accepted)"
)]
pub struct BransjeError(pub String);

impl Bransje {
    /// Every bransje, NAV's seven first in NAV's order.
    pub const ALL: &'static [Bransje] = &[
        Bransje::Barnehager,
        Bransje::Naeringsmiddelindustri,
        Bransje::Sykehus,
        Bransje::Sykehjem,
        Bransje::Transport,
        Bransje::Bygg,
        Bransje::Anlegg,
        Bransje::LeverandorindustriOljeGass,
        Bransje::AnnenNaering,
    ];

    /// The name as stored and sent (snake case, ASCII), e.g. `"naeringsmiddelindustri"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Bransje::Barnehager => "barnehager",
            Bransje::Naeringsmiddelindustri => "naeringsmiddelindustri",
            Bransje::Sykehus => "sykehus",
            Bransje::Sykehjem => "sykehjem",
            Bransje::Transport => "transport",
            Bransje::Bygg => "bygg",
            Bransje::Anlegg => "anlegg",
            Bransje::LeverandorindustriOljeGass => "leverandorindustri_olje_gass",
            Bransje::AnnenNaering => "annen_naering",
        }
    }

    /// NAV's enum name (`"BARNEHAGER"`, `"NÆRINGSMIDDELINDUSTRI"`, …), used as `kode` in pia's bransje
    /// export (`docs/nav-data.md` §1.6); `None` for the two groups NAV does not have.
    pub fn nav_name(&self) -> Option<&'static str> {
        match self {
            Bransje::Barnehager => Some("BARNEHAGER"),
            Bransje::Naeringsmiddelindustri => Some("NÆRINGSMIDDELINDUSTRI"),
            Bransje::Sykehus => Some("SYKEHUS"),
            Bransje::Sykehjem => Some("SYKEHJEM"),
            Bransje::Transport => Some("TRANSPORT"),
            Bransje::Bygg => Some("BYGG"),
            Bransje::Anlegg => Some("ANLEGG"),
            Bransje::LeverandorindustriOljeGass | Bransje::AnnenNaering => None,
        }
    }

    /// A display name: NAV's `navn` (`"Barnehager"`, sent by pia-dvh-import as `bransje`,
    /// `docs/nav-data.md` §1.3) for NAV's seven; our own wording for the other two.
    pub fn display_name(&self) -> &'static str {
        match self {
            Bransje::Barnehager => "Barnehager",
            Bransje::Naeringsmiddelindustri => "Næringsmiddelindustri",
            Bransje::Sykehus => "Sykehus",
            Bransje::Sykehjem => "Sykehjem",
            Bransje::Transport => "Transport",
            Bransje::Bygg => "Bygg",
            Bransje::Anlegg => "Anlegg",
            Bransje::LeverandorindustriOljeGass => "Leverandørindustri olje og gass",
            Bransje::AnnenNaering => "Annen næring",
        }
    }

    /// The code prefixes that define this bransje in `standard`: 2-digit næringer or exact 5-digit codes,
    /// without dots, copied from `docs/nav-data.md` §3.1 (NAV's `Bransje.kt` / `StandardNæringer.kt`).
    ///
    /// Empty for [`Bransje::LeverandorindustriOljeGass`] (no list in NAV's code or the brief, in either
    /// standard) and [`Bransje::AnnenNaering`].
    ///
    /// # Examples
    /// ```
    /// use ia_rct::domain::{Bransje, NaeringStandard};
    /// assert_eq!(Bransje::Barnehager.codes(NaeringStandard::Sn2007), ["88911"]);
    /// assert_eq!(Bransje::Barnehager.codes(NaeringStandard::Sn2025), ["85100"]);
    /// assert_eq!(Bransje::Bygg.codes(NaeringStandard::Sn2025), ["41"]);
    /// ```
    pub fn codes(&self, standard: NaeringStandard) -> &'static [&'static str] {
        use NaeringStandard::{Sn2007, Sn2025};
        match (self, standard) {
            // §3.1: BARNEHAGER, Næringskoder.
            (Bransje::Barnehager, Sn2007) => &["88911"],
            (Bransje::Barnehager, Sn2025) => &["85100"],
            // §3.1: NÆRINGSMIDDELINDUSTRI, Næring "10" in both.
            (Bransje::Naeringsmiddelindustri, _) => &["10"],
            // §3.1: SYKEHUS, Næringskoder.
            (Bransje::Sykehus, Sn2007) => &["86101", "86102", "86104", "86105", "86106", "86107"],
            (Bransje::Sykehus, Sn2025) => &["86101", "86102", "86103", "86104"],
            // §3.1: SYKEHJEM, Næringskoder ("87101-87106" in SN2025 is the six codes 87101 … 87106).
            (Bransje::Sykehjem, Sn2007) => &["87101", "87102"],
            (Bransje::Sykehjem, Sn2025) => &["87101", "87102", "87103", "87104", "87105", "87106"],
            // §3.1: TRANSPORT, Næringskoder (49.340 kabelbaner/skiheiser removed 2025-08-28).
            (Bransje::Transport, Sn2007) => &["49100", "49311", "49312", "49391", "49392"],
            (Bransje::Transport, Sn2025) => &["49110", "49120", "49310", "49320", "49330", "49390"],
            // §3.1: BYGG and ANLEGG, Næring "41" and "42" in both.
            (Bransje::Bygg, _) => &["41"],
            (Bransje::Anlegg, _) => &["42"],
            // Not defined in NAV's code (docs/nav-data.md §0, §8 item 5): no codes, never derived.
            (Bransje::LeverandorindustriOljeGass, _) => &[],
            (Bransje::AnnenNaering, _) => &[],
        }
    }

    /// The bransje of a næringskode read in `standard`.
    ///
    /// Each bransje is defined by 2-digit næringer or exact 5-digit codes ([`Bransje::codes`]); the code
    /// belongs to the bransje with the longest matching prefix, else [`Bransje::AnnenNaering`]. Within one
    /// standard NAV's lists do not overlap, so this equals NAV's `Bransje.fra` (first match, næring on the
    /// first 2 digits, Næringskoder on all 5) (`docs/nav-data.md` §3.1).
    ///
    /// Only the list of `standard` is used. NAV's `Bransje.kt` merges the SN2007 and SN2025 lists with
    /// `union`, so an SN2007-coded 85.100 (førskoleundervisning), 86.103 (andre somatiske
    /// spesialinstitusjoner) or 49.320 (drosjebiltransport) lands in Barnehager / Sykehus / Transport
    /// (§3.1's pitfall). Here those are [`Bransje::AnnenNaering`] under [`NaeringStandard::Sn2007`].
    pub fn of(kode: &Naeringskode, standard: NaeringStandard) -> Bransje {
        Bransje::ALL
            .iter()
            .flat_map(|b| {
                b.codes(standard)
                    .iter()
                    .map(move |prefix| (*b, prefix.len(), *prefix))
            })
            .filter(|(_, len, prefix)| kode.prefix(*len) == Some(*prefix))
            .max_by_key(|(_, len, _)| *len)
            .map_or(Bransje::AnnenNaering, |(b, _, _)| b)
    }
}

impl FromStr for Bransje {
    type Err = BransjeError;

    /// Accepts [`Bransje::as_str`], NAV's enum name ([`Bransje::nav_name`]) and
    /// [`Bransje::display_name`], all in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_lowercase();
        Bransje::ALL
            .iter()
            .copied()
            .find(|b| {
                b.as_str() == wanted
                    || b.display_name().to_lowercase() == wanted
                    || b.nav_name().is_some_and(|n| n.to_lowercase() == wanted)
            })
            .ok_or_else(|| BransjeError(s.to_owned()))
    }
}

impl fmt::Display for Bransje {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NaeringStandard::{Sn2007, Sn2025};

    fn kode(s: &str) -> Naeringskode {
        s.parse().expect("test næringskode parses")
    }

    // --- Naeringskode ---

    #[test]
    fn naeringskode_accepts_both_written_forms() {
        for text in ["88.911", "88911", " 88.911 "] {
            let k = kode(text);
            assert_eq!(k.to_string(), "88.911");
            assert_eq!(k.as_str(), "88911");
        }
        assert_eq!(kode("01.110").to_string(), "01.110");
        assert_eq!(kode("01110").naering(), "01");
    }

    #[test]
    fn naeringskode_refuses_other_shapes() {
        for bad in [
            "",
            "8891",
            "889111",
            "88.91",
            "889.11",
            "88,911",
            "88 911",
            "49_311",
            "8.8911",
            "88.91a",
            "٨٨٩١١",
            "88.9111",
            "88..911",
        ] {
            assert_eq!(
                bad.parse::<Naeringskode>(),
                Err(NaeringskodeError(bad.to_owned())),
                "{bad:?}"
            );
        }
        let error = "49_311".parse::<Naeringskode>().expect_err("underscore");
        assert!(error.to_string().contains("`49_311`"), "{error}");
        assert!(error.to_string().contains("88.911"), "{error}");
    }

    #[test]
    fn naeringskode_prefixes() {
        let k = kode("49.311");
        assert_eq!(k.naering(), "49");
        assert_eq!(k.group(), "493");
        assert_eq!(k.class(), "4931");
        assert_eq!(k.prefix(1), Some("4"));
        assert_eq!(k.prefix(5), Some("49311"));
        assert_eq!(k.prefix(0), None);
        assert_eq!(k.prefix(6), None);
    }

    #[test]
    fn naeringskode_uoppgitt() {
        assert!(kode("00.000").is_uoppgitt());
        assert!(!kode("88.911").is_uoppgitt());
        assert_eq!(Naeringskode::UOPPGITT.to_string(), "00.000");
    }

    #[test]
    fn naeringskode_serde_uses_the_dotted_form() {
        assert_eq!(
            serde_json::to_string(&kode("88911")).expect("serializes"),
            r#""88.911""#
        );
        let back: Naeringskode = serde_json::from_str(r#""88911""#).expect("deserializes");
        assert_eq!(back, kode("88.911"));
        assert!(serde_json::from_str::<Naeringskode>(r#""88.91""#).is_err());
    }

    // --- NaeringStandard ---

    #[test]
    fn naering_standard_parses_and_serializes() {
        assert_eq!("SN2007".parse::<NaeringStandard>(), Ok(Sn2007));
        assert_eq!("sn2025".parse::<NaeringStandard>(), Ok(Sn2025));
        assert!("2007".parse::<NaeringStandard>().is_err());
        for standard in NaeringStandard::ALL {
            let json = serde_json::to_string(standard).expect("serializes");
            assert_eq!(json, format!("\"{}\"", standard.as_str()));
        }
    }

    // --- Sektor ---

    #[test]
    fn sektor_accepts_codes_and_names() {
        for (text, sektor) in [
            ("1", Sektor::Statlig),
            ("2", Sektor::Kommunal),
            ("3", Sektor::Privat),
            ("0", Sektor::Ukjent),
            ("STATLIG", Sektor::Statlig),
            ("kommunal", Sektor::Kommunal),
            ("Privat", Sektor::Privat),
            (" ukjent ", Sektor::Ukjent),
        ] {
            assert_eq!(text.parse::<Sektor>(), Ok(sektor), "{text:?}");
        }
        for sektor in Sektor::ALL {
            assert_eq!(sektor.code().parse::<Sektor>(), Ok(*sektor));
            assert_eq!(sektor.as_str().parse::<Sektor>(), Ok(*sektor));
        }
    }

    #[test]
    fn sektor_refuses_legacy_fylkeskommunal_with_its_own_error() {
        for text in ["9", "FYLKESKOMMUNAL", "fylkeskommunal"] {
            assert_eq!(
                text.parse::<Sektor>(),
                Err(SektorError::LegacyFylkeskommunal(text.to_owned()))
            );
        }
        let error = "9".parse::<Sektor>().expect_err("legacy");
        assert!(error.to_string().contains("KOMMUNAL"), "{error}");
    }

    #[test]
    fn sektor_refuses_unknown_values() {
        for text in ["", "4", "01", "Statlig forvaltning", "x", "-1"] {
            assert_eq!(
                text.parse::<Sektor>(),
                Err(SektorError::Unknown(text.to_owned()))
            );
        }
        let error = "4".parse::<Sektor>().expect_err("unknown");
        assert!(error.to_string().contains("`4`"), "{error}");
    }

    #[test]
    fn sektor_serde_sends_names_and_accepts_codes_names_and_numbers() {
        assert_eq!(
            serde_json::to_string(&Sektor::Privat).expect("serializes"),
            r#""PRIVAT""#
        );
        for (json, sektor) in [
            (r#""1""#, Sektor::Statlig),
            (r#""KOMMUNAL""#, Sektor::Kommunal),
            ("3", Sektor::Privat),
            ("0", Sektor::Ukjent),
        ] {
            assert_eq!(
                serde_json::from_str::<Sektor>(json).expect("deserializes"),
                sektor,
                "{json}"
            );
        }
        assert!(serde_json::from_str::<Sektor>("9").is_err());
        assert!(serde_json::from_str::<Sektor>("-1").is_err());
        assert!(serde_json::from_str::<Sektor>("1.5").is_err());
    }

    // --- Bransje ---

    #[test]
    fn every_listed_code_maps_to_its_bransje_in_its_own_standard() {
        for standard in NaeringStandard::ALL {
            for bransje in Bransje::ALL {
                for code in bransje.codes(*standard) {
                    // 2-digit næringer: check the first, a middle and the last code of the næring.
                    let examples: Vec<String> = if code.len() == 2 {
                        ["000", "123", "999"]
                            .iter()
                            .map(|rest| format!("{code}{rest}"))
                            .collect()
                    } else {
                        vec![(*code).to_owned()]
                    };
                    for example in examples {
                        assert_eq!(
                            Bransje::of(&kode(&example), *standard),
                            *bransje,
                            "{example} in {standard}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn code_lists_match_the_brief() {
        // docs/nav-data.md §3.1, copied once more so an edit to `codes` has to be deliberate.
        let expected: [(Bransje, &[&str], &[&str]); 9] = [
            (Bransje::Barnehager, &["88911"], &["85100"]),
            (Bransje::Naeringsmiddelindustri, &["10"], &["10"]),
            (
                Bransje::Sykehus,
                &["86101", "86102", "86104", "86105", "86106", "86107"],
                &["86101", "86102", "86103", "86104"],
            ),
            (
                Bransje::Sykehjem,
                &["87101", "87102"],
                &["87101", "87102", "87103", "87104", "87105", "87106"],
            ),
            (
                Bransje::Transport,
                &["49100", "49311", "49312", "49391", "49392"],
                &["49110", "49120", "49310", "49320", "49330", "49390"],
            ),
            (Bransje::Bygg, &["41"], &["41"]),
            (Bransje::Anlegg, &["42"], &["42"]),
            (Bransje::LeverandorindustriOljeGass, &[], &[]),
            (Bransje::AnnenNaering, &[], &[]),
        ];
        for (bransje, sn2007, sn2025) in expected {
            assert_eq!(bransje.codes(Sn2007), sn2007, "{bransje} SN2007");
            assert_eq!(bransje.codes(Sn2025), sn2025, "{bransje} SN2025");
        }
    }

    #[test]
    fn sn2025_codes_are_not_read_into_sn2007_units() {
        // §3.1's pitfall: NAV's union of both lists puts these SN2007 codes in a bransje.
        assert_eq!(Bransje::of(&kode("85.100"), Sn2007), Bransje::AnnenNaering); // førskoleundervisning
        assert_eq!(Bransje::of(&kode("86.103"), Sn2007), Bransje::AnnenNaering); // andre somatiske spesialinst.
        assert_eq!(Bransje::of(&kode("49.320"), Sn2007), Bransje::AnnenNaering); // drosjebiltransport
        // The same digits in SN2025 do belong.
        assert_eq!(Bransje::of(&kode("85.100"), Sn2025), Bransje::Barnehager);
        assert_eq!(Bransje::of(&kode("86.103"), Sn2025), Bransje::Sykehus);
        assert_eq!(Bransje::of(&kode("49.320"), Sn2025), Bransje::Transport);
    }

    #[test]
    fn sn2007_codes_are_not_read_into_sn2025_units() {
        for (code, sn2007) in [
            ("88.911", Bransje::Barnehager),
            ("86.105", Bransje::Sykehus),
            ("86.106", Bransje::Sykehus),
            ("86.107", Bransje::Sykehus),
            ("49.100", Bransje::Transport),
            ("49.311", Bransje::Transport),
            ("49.312", Bransje::Transport),
            ("49.391", Bransje::Transport),
            ("49.392", Bransje::Transport),
        ] {
            assert_eq!(Bransje::of(&kode(code), Sn2007), sn2007, "{code} SN2007");
            assert_eq!(
                Bransje::of(&kode(code), Sn2025),
                Bransje::AnnenNaering,
                "{code} SN2025"
            );
        }
        for code in [
            "87.103", "87.104", "87.105", "87.106", "49.110", "49.120", "49.310", "49.330",
            "49.390",
        ] {
            assert_eq!(
                Bransje::of(&kode(code), Sn2007),
                Bransje::AnnenNaering,
                "{code} SN2007"
            );
            assert_ne!(
                Bransje::of(&kode(code), Sn2025),
                Bransje::AnnenNaering,
                "{code} SN2025"
            );
        }
    }

    #[test]
    fn unknown_and_neighbouring_codes_fall_to_annen_naering() {
        for code in [
            "00.000", "88.910", "88.912", "86.100", "87.100", "87.107", "49.340", "49.500",
            "43.210", "11.010", "62.010",
        ] {
            let k = kode(code);
            for standard in NaeringStandard::ALL {
                assert_eq!(
                    Bransje::of(&k, *standard),
                    Bransje::AnnenNaering,
                    "{code} in {standard}"
                );
            }
        }
    }

    #[test]
    fn leverandorindustri_is_never_derived() {
        // No code list in NAV's code (docs/nav-data.md §0, §8 item 5): petroleum-related codes stay AnnenNaering.
        for code in ["06.100", "06.200", "09.101", "09.109"] {
            for standard in NaeringStandard::ALL {
                assert_eq!(
                    Bransje::of(&kode(code), *standard),
                    Bransje::AnnenNaering,
                    "{code}"
                );
            }
        }
        for standard in NaeringStandard::ALL {
            assert!(
                Bransje::LeverandorindustriOljeGass
                    .codes(*standard)
                    .is_empty()
            );
        }
    }

    #[test]
    fn bransje_names_are_stable_and_match_serde() {
        for bransje in Bransje::ALL {
            let json = serde_json::to_string(bransje).expect("serializes");
            assert_eq!(json, format!("\"{}\"", bransje.as_str()));
            let back: Bransje = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(back, *bransje);
            assert_eq!(bransje.as_str().parse::<Bransje>(), Ok(*bransje));
            assert_eq!(bransje.display_name().parse::<Bransje>(), Ok(*bransje));
        }
        assert_eq!(
            Bransje::LeverandorindustriOljeGass.as_str(),
            "leverandorindustri_olje_gass"
        );
        assert_eq!(Bransje::AnnenNaering.as_str(), "annen_naering");
    }

    #[test]
    fn bransje_accepts_nav_names() {
        assert_eq!("BARNEHAGER".parse::<Bransje>(), Ok(Bransje::Barnehager));
        assert_eq!(
            "NÆRINGSMIDDELINDUSTRI".parse::<Bransje>(),
            Ok(Bransje::Naeringsmiddelindustri)
        );
        assert_eq!(
            "Næringsmiddelindustri".parse::<Bransje>(),
            Ok(Bransje::Naeringsmiddelindustri)
        );
        assert_eq!("TRANSPORT".parse::<Bransje>(), Ok(Bransje::Transport));
        let error = "bygg og anlegg"
            .parse::<Bransje>()
            .expect_err("not one of ours");
        assert!(error.to_string().contains("`bygg og anlegg`"), "{error}");
    }
}
