//! The gate side of QR tickets (issue 5): decide about a code offline, in well under a
//! millisecond of CPU, with one specific reason for every refusal.
//!
//! - [`GateValidator`]: the decision, in memory: trusted operator keys (with validity periods),
//!   the signed revocation list, pass-back state. Pure CPU; no I/O on the decision path.
//! - [`taplog`]: every decision written durably to the gate's SQLite store (through the core's
//!   store and its migrations), replayed into the validator when a gate restarts, and uploaded
//!   through the one outbox (`gate.taps`).
//! - [`peers`]: the gates of one station share accepted taps over UDP, authenticated with the
//!   station key, so a code shown at two gates inside its slot is caught.
//! - [`link`]: the gate's server link (a `Core` logged in with the operator role): pull keys
//!   and revocations, upload taps. A gate whose link is down keeps deciding on what it has.
//! - [`Gate`]: the three together, as a gate device runs them.

pub mod decision;
mod device;
pub mod keys;
pub mod link;
pub mod peers;
pub mod revocation;
mod state;
pub mod taplog;
mod validator;

pub use decision::{Accepted, Decision, Refusal, RefusalReason};
pub use keys::{KeyListError, OperatorKey, OperatorKeys};
pub use revocation::{RevocationError, RevocationList};
pub use state::Tap;
pub use device::{unix_now, Gate};
pub use link::LinkReport;
pub use validator::GateValidator;

/// Which way a gate lets riders through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Entry,
    Exit,
}

impl Direction {
    pub(crate) fn byte(self) -> u8 {
        match self {
            Direction::Entry => 1,
            Direction::Exit => 2,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<Direction> {
        match b {
            1 => Some(Direction::Entry),
            2 => Some(Direction::Exit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Entry => "entry",
            Direction::Exit => "exit",
        }
    }

    pub fn parse(text: &str) -> Option<Direction> {
        match text {
            "entry" => Some(Direction::Entry),
            "exit" => Some(Direction::Exit),
            _ => None,
        }
    }
}

/// How one gate is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateConfig {
    /// The station this gate stands in (network station id, 1..=14 on Line 1).
    pub station_id: u64,
    /// This gate's name, unique in the network (tap log, peers, server).
    pub gate_id: String,
    pub direction: Direction,
    /// Gates that share pass-back state (normally the station's gates; a station with two
    /// separate halls could have two groups).
    pub station_group: u64,
    /// How long one rotating proof is meant to be shown (the phone's slot length).
    pub slot_length_s: u64,
    /// Slack around the slot for the time it takes to scan, and small clock differences.
    pub slot_tolerance_s: u64,
    /// A phone clock ahead of the gate's by up to this is tolerated (and reported); beyond it
    /// the code is refused as clock skew. Behind the gate's clock, a code is indistinguishable
    /// from a screenshot and is stale after the slot and its tolerance.
    pub clock_window_s: u64,
    /// No second entry (or exit) of one ticket at this station group inside this time.
    pub pass_back_window_s: u64,
    /// How long after its validity a ticket may still exit (the rider entered in time).
    pub exit_grace_s: u64,
}

impl GateConfig {
    /// Defaults for a gate of `station_id`: the phone's slot length (20 s) with 10 s tolerance,
    /// a 5-minute clock window, 20 minutes of pass-back, 3 hours to exit after validity.
    pub fn new(station_id: u64, gate_id: &str, direction: Direction) -> GateConfig {
        GateConfig {
            station_id,
            gate_id: gate_id.to_string(),
            direction,
            station_group: station_id,
            slot_length_s: crate::tickets::DEFAULT_SLOT_SECONDS as u64,
            slot_tolerance_s: 10,
            clock_window_s: 300,
            pass_back_window_s: 20 * 60,
            exit_grace_s: 3 * 3600,
        }
    }
}

#[cfg(test)]
mod tests;
