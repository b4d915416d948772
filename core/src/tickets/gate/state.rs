//! What a gate remembers between taps: the last accepted tap of each ticket at this station
//! group (its own and its peers'), for pass-back, and the single journeys consumed at an exit.
//! All in memory, bounded by the pass-back window; the durable copy is the tap log, replayed
//! into this state when a gate starts.

use std::collections::HashMap;

use super::Direction;

/// One accepted tap, from this gate, a peer gate of the station, or the tap log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    pub ticket_id: [u8; 16],
    pub direction: Direction,
    /// Gate clock, unix seconds.
    pub at: u64,
    pub slot_start: u64,
    /// A single journey consumed by this exit stays consumed until this time (its validity
    /// plus the exit grace); `None` for anything else.
    pub consumed_until: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    direction: Direction,
    at: u64,
}

/// Why the state refuses a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateRefusal {
    PassBack,
    AlreadyUsed,
}

#[derive(Debug, Default)]
pub(crate) struct GateState {
    last: HashMap<[u8; 16], Last>,
    consumed: HashMap<[u8; 16], u64>,
    inserts_since_prune: u32,
}

impl GateState {
    /// Checks a tap against what this gate knows, without recording it.
    pub(crate) fn check(&self, ticket_id: &[u8; 16], direction: Direction, now: u64, window_s: u64) -> Result<(), StateRefusal> {
        if self.consumed.get(ticket_id).is_some_and(|until| now <= *until) {
            return Err(StateRefusal::AlreadyUsed);
        }
        match self.last.get(ticket_id) {
            // The same direction twice in the window: the first rider is still inside (entry)
            // or already out (exit), so this is a second person with the same ticket.
            Some(last) if last.direction == direction && now.saturating_sub(last.at) < window_s => {
                Err(StateRefusal::PassBack)
            }
            _ => Ok(()),
        }
    }

    /// Records an accepted tap (own, peer's or replayed). An older tap than the one held for
    /// the ticket does not replace it (peer messages can arrive late or twice).
    pub(crate) fn record(&mut self, tap: &Tap, now: u64, window_s: u64) {
        if let Some(until) = tap.consumed_until {
            self.consumed.insert(tap.ticket_id, until);
        }
        let newer = self.last.get(&tap.ticket_id).is_none_or(|l| l.at <= tap.at);
        if newer {
            self.last.insert(tap.ticket_id, Last { direction: tap.direction, at: tap.at });
        }
        self.inserts_since_prune += 1;
        if self.inserts_since_prune >= 4096 {
            self.prune(now, window_s);
        }
    }

    /// Forgets taps older than the window and consumptions past their time.
    pub(crate) fn prune(&mut self, now: u64, window_s: u64) {
        self.inserts_since_prune = 0;
        self.last.retain(|_, l| now.saturating_sub(l.at) < window_s);
        self.consumed.retain(|_, until| *until >= now);
    }

    pub(crate) fn remembered(&self) -> usize {
        self.last.len() + self.consumed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tap(id: u8, direction: Direction, at: u64) -> Tap {
        Tap { ticket_id: [id; 16], direction, at, slot_start: at, consumed_until: None }
    }

    #[test]
    fn entry_twice_inside_the_window_is_pass_back_and_an_exit_clears_it() {
        let mut s = GateState::default();
        s.record(&tap(1, Direction::Entry, 1000), 1000, 600);
        assert_eq!(s.check(&[1; 16], Direction::Entry, 1100, 600), Err(StateRefusal::PassBack));
        assert_eq!(s.check(&[1; 16], Direction::Entry, 1600, 600), Ok(()), "after the window");
        s.record(&tap(1, Direction::Exit, 1200), 1200, 600);
        assert_eq!(s.check(&[1; 16], Direction::Entry, 1300, 600), Ok(()));
        assert_eq!(s.check(&[2; 16], Direction::Entry, 1300, 600), Ok(()), "another ticket");
    }

    #[test]
    fn a_late_peer_message_does_not_undo_a_newer_tap() {
        let mut s = GateState::default();
        s.record(&tap(1, Direction::Exit, 1200), 1200, 600);
        s.record(&tap(1, Direction::Entry, 1000), 1210, 600);
        assert_eq!(s.check(&[1; 16], Direction::Entry, 1220, 600), Ok(()));
    }

    #[test]
    fn consumed_single_journeys_stay_used_and_old_taps_are_pruned() {
        let mut s = GateState::default();
        s.record(&Tap { consumed_until: Some(5000), ..tap(3, Direction::Exit, 1000) }, 1000, 600);
        assert_eq!(s.check(&[3; 16], Direction::Entry, 4000, 600), Err(StateRefusal::AlreadyUsed));
        s.prune(4000, 600);
        assert_eq!(s.remembered(), 1, "the consumption is kept, the old tap is not");
        s.prune(6000, 600);
        assert_eq!(s.remembered(), 0);
    }
}
