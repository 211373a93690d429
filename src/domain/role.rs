//! The roles a bearer token can hold.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Who is calling, as far as permissions go.
///
/// - `direktorat`: Arbeids- og velferdsdirektoratet; may do everything.
/// - `fylke`: one NAV fylke, bound to its 2-digit code; reads and reports only for its own firms.
/// - `forsker`: a researcher; reads protocols, aggregates, balance tables and estimates, never
///   firm-level assignment lists or firm-level outcomes.
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
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Arbeids- og velferdsdirektoratet.
    Direktorat,
    /// A NAV fylke office, bound to one fylke code.
    Fylke,
    /// A researcher.
    Forsker,
}

/// Why a string is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a role; expected direktorat, fylke or forsker")]
pub struct RoleError(pub String);

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: &'static [Role] = &[Role::Direktorat, Role::Fylke, Role::Forsker];

    /// The role's name as stored and sent (`"direktorat"`, `"fylke"`, `"forsker"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Direktorat => "direktorat",
            Role::Fylke => "fylke",
            Role::Forsker => "forsker",
        }
    }
}

impl FromStr for Role {
    type Err = RoleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| RoleError(s.to_owned()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
