//! A hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks", 2014) for
//! merging a draft edited on two of a resident's devices, field by field, last writer wins.
//!
//! Why not plain wall-clock time: phones' clocks drift and jump (a cheap phone with a flat
//! battery boots in 1970, a user sets the time by hand). A hybrid stamp stays close to real time
//! but never goes backwards on one device, and after a device has seen a remote edit its next
//! edit orders after it, so "the edit I made after seeing yours" always wins.
//!
//! Stamps are ordered by (wall time, counter, node); the node (device id) breaks ties, so two
//! devices never produce equal stamps and the order is total. The text form
//! `{wall_ms:013}-{counter:06}-{node}` sorts the same way as the stamps, so the store can
//! compare stamps as SQLite `TEXT` without decoding them.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// The largest wall time the fixed-width text form holds (13 digits: the year 2286).
pub const MAX_WALL_MS: u64 = 9_999_999_999_999;
/// The largest counter the fixed-width text form holds (6 digits). A counter that would pass
/// it moves the wall time on by one millisecond instead.
pub const MAX_COUNTER: u32 = 999_999;
/// The longest node (device) id.
pub const MAX_NODE_LEN: usize = 64;
/// How far ahead of this device's clock a remote stamp may be before it is refused: one hour.
pub const DEFAULT_MAX_DRIFT_MS: u64 = 60 * 60 * 1000;

/// A hybrid logical clock timestamp. Ordered by wall time, then counter, then node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hlc {
    // Field order matters: the derived `Ord` compares in this order.
    /// Milliseconds since the Unix epoch, at most [`MAX_WALL_MS`].
    pub wall_ms: u64,
    /// Orders stamps within the same millisecond, at most [`MAX_COUNTER`].
    pub counter: u32,
    /// The device that made the stamp: the tie-break between devices.
    pub node: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HlcError {
    #[error("a node id has 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.' and ':'")]
    InvalidNode,
    #[error("not a timestamp of the form WALL-COUNTER-NODE (13 and 6 digits)")]
    Malformed,
    #[error(
        "timestamp out of range (wall time above {MAX_WALL_MS} ms or counter above {MAX_COUNTER})"
    )]
    OutOfRange,
    /// The remote device's clock is wrong (or ours is): taking its time would push every later
    /// edit on this device into the future.
    #[error("remote timestamp is {ahead_ms} ms ahead of this device's clock (at most {max_drift_ms} ms allowed)")]
    TooFarAhead { ahead_ms: u64, max_drift_ms: u64 },
}

/// Node ids are restricted to printable ASCII without spaces so the text form stays one token
/// and byte order equals character order (SQLite's `BINARY` collation compares bytes).
fn is_valid_node(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= MAX_NODE_LEN
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl Hlc {
    /// Whether the stamp fits the fixed-width text form (so its text sorts like the stamp).
    /// Stamps from [`HlcClock`] and from parsing always do.
    pub fn is_valid(&self) -> bool {
        self.wall_ms <= MAX_WALL_MS && self.counter <= MAX_COUNTER && is_valid_node(&self.node)
    }

    fn check(&self) -> Result<(), HlcError> {
        if !is_valid_node(&self.node) {
            Err(HlcError::InvalidNode)
        } else if self.wall_ms > MAX_WALL_MS || self.counter > MAX_COUNTER {
            Err(HlcError::OutOfRange)
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:013}-{:06}-{}", self.wall_ms, self.counter, self.node)
    }
}

impl FromStr for Hlc {
    type Err = HlcError;
    /// Parses exactly the form [`Display`](fmt::Display) writes; never panics.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() < 22 || b.get(13) != Some(&b'-') || b.get(20) != Some(&b'-') {
            return Err(HlcError::Malformed);
        }
        let digits = |range: std::ops::Range<usize>| -> Result<u64, HlcError> {
            let part = b.get(range).ok_or(HlcError::Malformed)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(HlcError::Malformed);
            }
            Ok(part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
        };
        let wall_ms = digits(0..13)?;
        let counter = u32::try_from(digits(14..20)?).map_err(|_| HlcError::OutOfRange)?;
        // Bytes 0..21 are ASCII, so 21 is a character boundary.
        let node = s.get(21..).ok_or(HlcError::Malformed)?;
        let hlc = Hlc {
            wall_ms,
            counter,
            node: node.to_string(),
        };
        hlc.check()?;
        Ok(hlc)
    }
}

impl TryFrom<String> for Hlc {
    type Error = HlcError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Hlc> for String {
    fn from(h: Hlc) -> String {
        h.to_string()
    }
}

/// The clock of one device. Thread-safe: the app's threads share one clock per device, so two
/// edits made at the same millisecond still get distinct, ordered stamps.
///
/// The clock's state lives in memory; after a restart, [`HlcClock::restore`] it from the
/// newest stamp the store holds so it stays monotonic even if the phone's clock went back.
#[derive(Debug)]
pub struct HlcClock {
    node: String,
    max_drift_ms: u64,
    /// The (wall, counter) of the last stamp issued or observed.
    last: Mutex<(u64, u32)>,
}

/// The next (wall, counter) after `(wall, counter)`. At the very end of the range (the year
/// 2286) it stays put rather than overflow.
fn next_after(wall: u64, counter: u32) -> (u64, u32) {
    if counter < MAX_COUNTER {
        (wall, counter + 1)
    } else if wall < MAX_WALL_MS {
        (wall + 1, 0)
    } else {
        (wall, counter)
    }
}

impl HlcClock {
    /// A clock for the device `node` (its stable device id), allowing remote stamps up to
    /// [`DEFAULT_MAX_DRIFT_MS`] ahead.
    pub fn new(node: impl Into<String>) -> Result<HlcClock, HlcError> {
        let node = node.into();
        if !is_valid_node(&node) {
            return Err(HlcError::InvalidNode);
        }
        Ok(HlcClock {
            node,
            max_drift_ms: DEFAULT_MAX_DRIFT_MS,
            last: Mutex::new((0, 0)),
        })
    }

    /// Sets how far ahead of the physical clock a remote stamp may be.
    pub fn with_max_drift_ms(mut self, max_drift_ms: u64) -> HlcClock {
        self.max_drift_ms = max_drift_ms;
        self
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn max_drift_ms(&self) -> u64 {
        self.max_drift_ms
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (u64, u32)> {
        // The state is two integers, always consistent; a panic elsewhere cannot corrupt it.
        self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stamp(&self, (wall_ms, counter): (u64, u32)) -> Hlc {
        Hlc {
            wall_ms,
            counter,
            node: self.node.clone(),
        }
    }

    /// A stamp for a local edit ("send" in the paper): later than every stamp this clock issued
    /// or observed, even if `physical_ms` went backwards.
    pub fn now(&self, physical_ms: u64) -> Hlc {
        let mut last = self.state();
        let pt = physical_ms.min(MAX_WALL_MS);
        *last = if pt > last.0 {
            (pt, 0)
        } else {
            next_after(last.0, last.1)
        };
        self.stamp(*last)
    }

    /// Takes in a stamp from another device ("receive" in the paper) and returns a stamp later
    /// than both it and everything this clock issued before.
    ///
    /// A remote stamp more than the max drift ahead of `physical_ms` is refused with
    /// [`HlcError::TooFarAhead`] and the clock does not move: one phone with a wrong clock must
    /// not drag every device's edits into the future, where they would win every merge. The
    /// caller keeps the remote edit (it is the resident's data) but re-stamps it with
    /// [`HlcClock::now`], so it orders as an edit made now.
    pub fn observe(&self, remote: &Hlc, physical_ms: u64) -> Result<Hlc, HlcError> {
        remote.check()?;
        if remote.wall_ms > physical_ms.saturating_add(self.max_drift_ms) {
            return Err(HlcError::TooFarAhead {
                ahead_ms: remote.wall_ms - physical_ms,
                max_drift_ms: self.max_drift_ms,
            });
        }
        let mut last = self.state();
        let (lw, lc) = *last;
        let (rw, rc) = (remote.wall_ms, remote.counter);
        let pt = physical_ms.min(MAX_WALL_MS);
        let wall = lw.max(rw).max(pt);
        *last = if wall == lw && wall == rw {
            next_after(wall, lc.max(rc))
        } else if wall == lw {
            next_after(lw, lc)
        } else if wall == rw {
            next_after(rw, rc)
        } else {
            (pt, 0)
        };
        Ok(self.stamp(*last))
    }

    /// Moves the clock up to at least `persisted` (a stamp this device wrote before a restart),
    /// without the drift check: the device's own past is trusted. Never moves it back.
    pub fn restore(&self, persisted: &Hlc) {
        if persisted.wall_ms > MAX_WALL_MS || persisted.counter > MAX_COUNTER {
            return;
        }
        let mut last = self.state();
        *last = (*last).max((persisted.wall_ms, persisted.counter));
    }
}

/// Milliseconds since the Unix epoch by this device's clock, for [`HlcClock::now`]. A clock set
/// before 1970 gives 0; the hybrid clock still moves forward.
pub fn physical_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Last writer wins: the value with the later stamp. Two distinct stamps are never equal (the
/// node breaks ties), so the result does not depend on the argument order; equal stamps mean the
/// same write, and `a` is returned.
pub fn merge_lww<'a, T>(a: (&'a Hlc, &'a T), b: (&'a Hlc, &'a T)) -> &'a T {
    if b.0 > a.0 {
        b.1
    } else {
        a.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::cmp::Ordering;

    const NODE_CHARS: &[u8] = b"abcXYZ019-_.:";

    fn random_node(rng: &mut StdRng) -> String {
        let len = rng.gen_range(1..=8);
        (0..len)
            .map(|_| NODE_CHARS[rng.gen_range(0..NODE_CHARS.len())] as char)
            .collect()
    }

    /// Stamps crowded into few values, so equal walls and counters are common.
    fn random_hlc(rng: &mut StdRng) -> Hlc {
        let wall_ms = match rng.gen_range(0..4) {
            0 => rng.gen_range(0..3),
            1 => MAX_WALL_MS - rng.gen_range(0..3),
            _ => 1_760_000_000_000 + rng.gen_range(0..5),
        };
        let counter = match rng.gen_range(0..3) {
            0 => rng.gen_range(0..3),
            1 => MAX_COUNTER - rng.gen_range(0..3),
            _ => rng.gen_range(0..=MAX_COUNTER),
        };
        Hlc {
            wall_ms,
            counter,
            node: random_node(rng),
        }
    }

    #[test]
    fn text_form_is_fixed_width_and_round_trips() {
        let h = Hlc {
            wall_ms: 1_760_000_000_123,
            counter: 7,
            node: "phone-a".into(),
        };
        assert_eq!(h.to_string(), "1760000000123-000007-phone-a");
        assert_eq!("1760000000123-000007-phone-a".parse::<Hlc>(), Ok(h.clone()));
        assert_eq!(
            Hlc {
                wall_ms: 5,
                counter: 0,
                node: "n".into()
            }
            .to_string(),
            "0000000000005-000000-n"
        );
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            "\"1760000000123-000007-phone-a\""
        );
        assert_eq!(
            serde_json::from_str::<Hlc>("\"1760000000123-000007-phone-a\"").unwrap(),
            h
        );
        for bad in [
            "",
            "1760000000123-000007-",
            "1760000000123-000007",
            "176000000012-000007-x",
            "1760000000123-00007-x",
            "1760000000123_000007-x",
            "17600000001a3-000007-x",
            "1760000000123-000007-a b",
            "1760000000123-000007-é",
            "+760000000123-000007-x",
            "1760000000123-+00007-x",
        ] {
            assert!(bad.parse::<Hlc>().is_err(), "{bad}");
        }
        let long = format!("1760000000123-000007-{}", "n".repeat(MAX_NODE_LEN + 1));
        assert_eq!(long.parse::<Hlc>(), Err(HlcError::InvalidNode));
        assert!(serde_json::from_str::<Hlc>("\"x\"").is_err());
    }

    #[test]
    fn string_order_equals_ord_order() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50_000 {
            let (a, b) = (random_hlc(&mut rng), random_hlc(&mut rng));
            let (sa, sb) = (a.to_string(), b.to_string());
            assert_eq!(sa.as_bytes().cmp(sb.as_bytes()), a.cmp(&b), "{sa} vs {sb}");
            assert_eq!(sa.parse::<Hlc>().as_ref(), Ok(&a));
        }
    }

    #[test]
    fn order_is_total_and_follows_wall_counter_node() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut stamps: Vec<Hlc> = (0..3000).map(|_| random_hlc(&mut rng)).collect();
        for pair in stamps.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let key = |h: &Hlc| (h.wall_ms, h.counter, h.node.clone());
            assert_eq!(a.cmp(b), key(a).cmp(&key(b)));
            assert_eq!(a.cmp(b), b.cmp(a).reverse(), "antisymmetric");
            assert_eq!(a.cmp(b) == Ordering::Equal, a == b);
        }
        stamps.sort();
        for pair in stamps.windows(2) {
            assert!(pair[0] <= pair[1]);
        }
        // Transitivity over random triples.
        for _ in 0..10_000 {
            let mut i = || rng.gen_range(0..stamps.len());
            let (a, b, c) = (&stamps[i()], &stamps[i()], &stamps[i()]);
            if a <= b && b <= c {
                assert!(a <= c);
            }
        }
    }

    #[test]
    fn now_is_monotonic_when_the_physical_clock_goes_backwards() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let clock = HlcClock::new("phone").unwrap();
            let mut physical: u64 = 1_760_000_000_000;
            let mut prev = clock.now(physical);
            for _ in 0..200 {
                physical = match rng.gen_range(0..5) {
                    0 => physical.saturating_sub(rng.gen_range(0..10_000_000)), // clock set back
                    1 => rng.gen_range(0..10),                                  // booted in 1970
                    2 => physical,                                              // same millisecond
                    _ => physical + rng.gen_range(0..1000),
                };
                let next = clock.now(physical);
                assert!(next > prev, "{prev} then {next}");
                assert!(next.is_valid());
                assert!(
                    next.wall_ms >= physical.min(prev.wall_ms),
                    "stays near physical time"
                );
                prev = next;
            }
        }
        // A normal clock gives its own time with counter 0.
        let clock = HlcClock::new("phone").unwrap();
        assert_eq!(
            clock.now(1000),
            Hlc {
                wall_ms: 1000,
                counter: 0,
                node: "phone".into()
            }
        );
        assert_eq!(clock.now(1000).counter, 1);
        assert_eq!(
            clock.now(999),
            Hlc {
                wall_ms: 1000,
                counter: 2,
                node: "phone".into()
            }
        );
        assert_eq!(clock.now(2000).counter, 0);
    }

    #[test]
    fn counter_overflow_moves_the_wall_time_on() {
        let clock = HlcClock::new("a").unwrap();
        clock.restore(&Hlc {
            wall_ms: 500,
            counter: MAX_COUNTER - 1,
            node: "a".into(),
        });
        let h = clock.now(0);
        assert_eq!((h.wall_ms, h.counter), (500, MAX_COUNTER));
        let h = clock.now(0);
        assert_eq!((h.wall_ms, h.counter), (501, 0));
        // At the very end of the range it neither panics nor leaves the range.
        let end = HlcClock::new("a").unwrap();
        end.restore(&Hlc {
            wall_ms: MAX_WALL_MS,
            counter: MAX_COUNTER,
            node: "a".into(),
        });
        let h = end.now(u64::MAX);
        assert!(h.is_valid() && h.wall_ms == MAX_WALL_MS);
    }

    #[test]
    fn receive_is_later_than_both_sides() {
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..500 {
            let clock = HlcClock::new("local")
                .unwrap()
                .with_max_drift_ms(rng.gen_range(0..5_000));
            let mut physical: u64 = 1_760_000_000_000;
            let mut last_local = clock.now(physical);
            for _ in 0..50 {
                physical = physical
                    .wrapping_add(rng.gen_range(0..2000))
                    .saturating_sub(rng.gen_range(0..2000));
                if rng.gen_bool(0.5) {
                    let next = clock.now(physical);
                    assert!(next > last_local);
                    last_local = next;
                    continue;
                }
                let remote = Hlc {
                    wall_ms: (physical + clock.max_drift_ms())
                        .saturating_sub(rng.gen_range(0..10_000)),
                    counter: rng.gen_range(0..=MAX_COUNTER),
                    node: random_node(&mut rng),
                };
                let got = clock.observe(&remote, physical).unwrap();
                assert!(
                    (got.wall_ms, got.counter) > (remote.wall_ms, remote.counter),
                    "{got} vs {remote}"
                );
                assert!(got > last_local, "{got} vs {last_local}");
                assert_eq!(got.node, "local");
                last_local = got;
            }
        }
    }

    #[test]
    fn a_remote_clock_far_ahead_is_refused_and_does_not_move_the_clock() {
        let clock = HlcClock::new("local").unwrap();
        let now = 1_760_000_000_000;
        let ok = Hlc {
            wall_ms: now + DEFAULT_MAX_DRIFT_MS,
            counter: 3,
            node: "b".into(),
        };
        assert_eq!(
            clock.observe(&ok, now).unwrap().wall_ms,
            now + DEFAULT_MAX_DRIFT_MS
        );
        let clock = HlcClock::new("local").unwrap();
        let year_ahead = Hlc {
            wall_ms: now + 365 * 86_400_000,
            counter: 0,
            node: "b".into(),
        };
        assert_eq!(
            clock.observe(&year_ahead, now),
            Err(HlcError::TooFarAhead {
                ahead_ms: 365 * 86_400_000,
                max_drift_ms: DEFAULT_MAX_DRIFT_MS
            })
        );
        assert_eq!(
            clock.now(now).wall_ms,
            now,
            "the refused stamp did not move the clock"
        );
        let strict = HlcClock::new("local").unwrap().with_max_drift_ms(10);
        assert!(matches!(
            strict.observe(
                &Hlc {
                    wall_ms: now + 11,
                    counter: 0,
                    node: "b".into()
                },
                now
            ),
            Err(HlcError::TooFarAhead {
                ahead_ms: 11,
                max_drift_ms: 10
            })
        ));
        // A remote stamp outside the text form's range is refused, not trusted.
        let bad = Hlc {
            wall_ms: 10,
            counter: MAX_COUNTER + 1,
            node: "b".into(),
        };
        assert_eq!(clock.observe(&bad, now), Err(HlcError::OutOfRange));
        let bad = Hlc {
            wall_ms: 10,
            counter: 0,
            node: "".into(),
        };
        assert_eq!(clock.observe(&bad, now), Err(HlcError::InvalidNode));
        assert!(clock
            .observe(
                &Hlc {
                    wall_ms: u64::MAX,
                    counter: 0,
                    node: "b".into()
                },
                u64::MAX
            )
            .is_err());
    }

    #[test]
    fn invalid_node_ids_are_refused() {
        for bad in ["", "a b", "phone/1", "điện-thoại", "x\n"] {
            assert_eq!(
                HlcClock::new(bad).unwrap_err(),
                HlcError::InvalidNode,
                "{bad:?}"
            );
        }
        assert!(HlcClock::new("n".repeat(MAX_NODE_LEN)).is_ok());
        assert!(HlcClock::new("6f1c2d3e-0a1b-4c5d-9e8f-123456789abc").is_ok());
    }

    #[test]
    fn restore_never_moves_back() {
        let clock = HlcClock::new("a").unwrap();
        clock.now(5000);
        clock.restore(&Hlc {
            wall_ms: 10,
            counter: 0,
            node: "a".into(),
        });
        assert!(clock.now(0).wall_ms >= 5000);
        clock.restore(&Hlc {
            wall_ms: 9000,
            counter: 4,
            node: "a".into(),
        });
        let h = clock.now(0);
        assert_eq!((h.wall_ms, h.counter), (9000, 5));
    }

    #[test]
    fn lww_merge_picks_the_later_stamp_in_either_order() {
        let mut rng = StdRng::seed_from_u64(6);
        for _ in 0..10_000 {
            let (ha, hb) = (random_hlc(&mut rng), random_hlc(&mut rng));
            let (va, vb) = ("value a", "value b");
            let ab = merge_lww((&ha, &va), (&hb, &vb));
            let ba = merge_lww((&hb, &vb), (&ha, &va));
            if ha != hb {
                assert_eq!(ab, ba, "commutative for distinct stamps");
                assert_eq!(*ab, if ha > hb { va } else { vb });
            }
        }
        // Two devices editing in the same millisecond: the node decides, the same way everywhere.
        let a = Hlc {
            wall_ms: 1,
            counter: 0,
            node: "a".into(),
        };
        let b = Hlc {
            wall_ms: 1,
            counter: 0,
            node: "b".into(),
        };
        assert_eq!(*merge_lww((&a, &1), (&b, &2)), 2);
        assert_eq!(*merge_lww((&b, &2), (&a, &1)), 2);
    }

    #[test]
    fn an_edit_after_seeing_a_remote_edit_wins_even_with_a_slow_clock() {
        // Phone B's clock is 30 minutes behind phone A's.
        let a = HlcClock::new("phone-a").unwrap();
        let b = HlcClock::new("phone-b").unwrap();
        let t = 1_760_000_000_000;
        let from_a = a.now(t);
        b.observe(&from_a, t - 30 * 60_000).unwrap();
        let from_b = b.now(t - 30 * 60_000 + 1);
        assert!(from_b > from_a);
        assert_eq!(*merge_lww((&from_a, &"old"), (&from_b, &"new")), "new");
    }

    #[test]
    fn concurrent_stamps_are_unique() {
        let clock = std::sync::Arc::new(HlcClock::new("phone").unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let clock = clock.clone();
                std::thread::spawn(move || {
                    (0..2000)
                        .map(|_| clock.now(1_760_000_000_000))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<Hlc> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn random_text_never_panics_the_parser() {
        let mut rng = StdRng::seed_from_u64(8);
        let alphabet: Vec<char> = "0123456789-ab:é\u{0}".chars().collect();
        for _ in 0..50_000 {
            let len = rng.gen_range(0..30);
            let s: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            if let Ok(h) = s.parse::<Hlc>() {
                assert!(h.is_valid());
                assert_eq!(h.to_string(), s);
            }
        }
        assert!(physical_now_ms() > 1_700_000_000_000);
    }

    #[test]
    fn types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Hlc>();
        check::<HlcClock>();
        check::<HlcError>();
    }
}
