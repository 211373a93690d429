//! A trial's lifecycle: draft → registered → enrolling → randomized → follow-up → closed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a trial is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    /// The protocol may still be edited in place.
    Draft,
    /// The protocol's hash is fixed; a change is a new version.
    Registered,
    /// Firms are being enrolled for the next wave; the protocol is locked.
    Enrolling,
    /// The latest wave has been drawn; assignments are final.
    Randomized,
    /// Enrollment is over; outcomes are followed.
    FollowUp,
    /// The trial is over.
    Closed,
}

impl TrialState {
    /// Every state, in lifecycle order.
    pub const ALL: [TrialState; 6] = [
        TrialState::Draft,
        TrialState::Registered,
        TrialState::Enrolling,
        TrialState::Randomized,
        TrialState::FollowUp,
        TrialState::Closed,
    ];

    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            TrialState::Draft => "draft",
            TrialState::Registered => "registered",
            TrialState::Enrolling => "enrolling",
            TrialState::Randomized => "randomized",
            TrialState::FollowUp => "follow_up",
            TrialState::Closed => "closed",
        }
    }

    /// The states a direktorat may move a trial to from this one by a transition request.
    /// (`randomized` is reached only by drawing a wave; `enrolling` → `follow_up` abandons an open
    /// wave and is allowed only once a wave has been drawn, which the store checks.)
    pub fn next(&self) -> &'static [TrialState] {
        match self {
            TrialState::Draft => &[TrialState::Registered],
            TrialState::Registered => &[TrialState::Enrolling],
            TrialState::Enrolling => &[TrialState::FollowUp],
            TrialState::Randomized => &[TrialState::Enrolling, TrialState::FollowUp],
            TrialState::FollowUp => &[TrialState::Closed],
            TrialState::Closed => &[],
        }
    }

    /// Checks a transition request.
    ///
    /// # Errors
    /// A message naming the allowed next steps.
    pub fn check_transition(&self, to: TrialState) -> Result<(), String> {
        if self.next().contains(&to) {
            return Ok(());
        }
        let allowed: Vec<&str> = self.next().iter().map(TrialState::as_str).collect();
        let hint = match self {
            TrialState::Enrolling => {
                "draw the wave with POST /v1/trials/{id}/randomize, or end enrollment with follow_up"
                    .to_owned()
            }
            _ if allowed.is_empty() => "nothing follows".to_owned(),
            _ => format!("the next step is {}", allowed.join(" or ")),
        };
        Err(format!(
            "a trial cannot go from {} to {}: {hint}",
            self.as_str(),
            to.as_str()
        ))
    }

    /// Whether the protocol may be edited in place (draft) or versioned (registered).
    pub fn protocol_editable(&self) -> bool {
        matches!(self, TrialState::Draft | TrialState::Registered)
    }
}

impl FromStr for TrialState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrialState::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a trial state"))
    }
}

impl fmt::Display for TrialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_transitions_are_allowed() {
        use TrialState::*;
        let allowed = [
            (Draft, Registered),
            (Registered, Enrolling),
            (Enrolling, FollowUp),
            (Randomized, Enrolling),
            (Randomized, FollowUp),
            (FollowUp, Closed),
        ];
        for from in TrialState::ALL {
            for to in TrialState::ALL {
                assert_eq!(
                    from.check_transition(to).is_ok(),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        let message = Enrolling.check_transition(Randomized).expect_err("refused");
        assert!(message.contains("randomize"), "{message}");
        assert!(
            Draft
                .check_transition(Closed)
                .expect_err("refused")
                .contains("registered")
        );
    }
}
