//! The broker lifecycle as an explicit state machine.
//!
//! ```text
//!   CreateBroker ──► CREATION_IN_PROGRESS ──(agent reports ready)──► RUNNING
//!                          │ (deadline passed)                          │
//!                          ▼                                            │ RebootBroker
//!                    CREATION_FAILED                          REBOOT_IN_PROGRESS ─► RUNNING
//!   DeleteBroker (from any state) ──► DELETION_IN_PROGRESS ──(all resources gone)──► row deleted (404)
//! ```
//! Only the transitions listed in [`BrokerState::can_transition_to`] are legal; the
//! store applies them with a compare-and-set on the current state.

use std::fmt;

/// `brokerState` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrokerState {
    CreationInProgress,
    CreationFailed,
    DeletionInProgress,
    Running,
    RebootInProgress,
    CriticalActionRequired,
}

impl BrokerState {
    pub fn as_wire(self) -> &'static str {
        match self {
            Self::CreationInProgress => "CREATION_IN_PROGRESS",
            Self::CreationFailed => "CREATION_FAILED",
            Self::DeletionInProgress => "DELETION_IN_PROGRESS",
            Self::Running => "RUNNING",
            Self::RebootInProgress => "REBOOT_IN_PROGRESS",
            Self::CriticalActionRequired => "CRITICAL_ACTION_REQUIRED",
        }
    }

    /// Parses a stored state; an unknown one is a corrupt-row error for that broker.
    pub fn from_db(s: &str) -> Result<Self, crate::error::Error> {
        Ok(match s {
            "CREATION_IN_PROGRESS" => Self::CreationInProgress,
            "CREATION_FAILED" => Self::CreationFailed,
            "DELETION_IN_PROGRESS" => Self::DeletionInProgress,
            "RUNNING" => Self::Running,
            "REBOOT_IN_PROGRESS" => Self::RebootInProgress,
            "CRITICAL_ACTION_REQUIRED" => Self::CriticalActionRequired,
            other => return Err(super::catalogue::corrupt("broker state", other)),
        })
    }

    /// The legal edges of the lifecycle graph.
    pub fn can_transition_to(self, next: BrokerState) -> bool {
        use BrokerState::*;
        match (self, next) {
            (_, DeletionInProgress) => self != DeletionInProgress,
            (CreationInProgress, Running | CreationFailed) => true,
            (Running, RebootInProgress | CriticalActionRequired) => true,
            (CriticalActionRequired, RebootInProgress | Running) => true,
            (RebootInProgress, Running | CriticalActionRequired) => true,
            _ => false,
        }
    }

    /// Whether the broker's containers should exist and run.
    pub fn wants_containers(self) -> bool {
        matches!(
            self,
            Self::CreationInProgress
                | Self::Running
                | Self::RebootInProgress
                | Self::CriticalActionRequired
        )
    }
}

impl fmt::Display for BrokerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_wire())
    }
}

#[cfg(test)]
mod tests {
    use super::BrokerState::*;

    #[test]
    fn lifecycle_edges() {
        assert!(CreationInProgress.can_transition_to(Running));
        assert!(CreationInProgress.can_transition_to(CreationFailed));
        assert!(Running.can_transition_to(DeletionInProgress));
        assert!(CreationFailed.can_transition_to(DeletionInProgress));
        assert!(!DeletionInProgress.can_transition_to(DeletionInProgress));
        assert!(!DeletionInProgress.can_transition_to(Running));
        assert!(!CreationFailed.can_transition_to(Running));
        assert!(!Running.can_transition_to(CreationInProgress));
    }

    #[test]
    fn wire_round_trip() {
        for s in [
            CreationInProgress,
            CreationFailed,
            DeletionInProgress,
            Running,
            RebootInProgress,
            CriticalActionRequired,
        ] {
            assert_eq!(super::BrokerState::from_db(s.as_wire()).unwrap(), s);
        }
        assert!(super::BrokerState::from_db("MELTING").is_err());
    }
}
