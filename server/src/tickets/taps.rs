//! Gate taps uploaded by the operator (`POST /v1/operator/taps`, the `gate.taps` command) and
//! clone detection. A tap is (ticket id, station, gate, direction, time, decision); the same tap
//! sent twice (two gates of a station relaying each other's log) is stored once.
//!
//! A device key copied to a second phone shows itself in the taps: one ticket accepted at two
//! places no single rider could be at. Two accepted taps of one ticket are impossible when
//! - they are at different stations, closer in time than the fastest train could cover the
//!   distance between them ([`MAX_SPEED_M_PER_S`], faster than any metro, so a real rider is
//!   never caught), or
//! - they are entries at two different gates of one station within one code slot
//!   ([`SAME_STATION_WINDOW_SECS`]).
//!
//! Either revokes the ticket: a revocation row, `ticket.revoked` on the owner's feed, and the id
//! in the next revocation list, all in the transaction that stores the taps.

use std::collections::{BTreeMap, BTreeSet};

use congdan_core::tickets::network;
use serde::Deserialize;

use super::revocations::{self, CLONE_DETECTED};
use crate::cases::idempotency;
use crate::db::{now_millis, postgres, sqlite, Db, DbResult};
use crate::feed;
use crate::identity::store::account_feed;

/// The most taps one upload may carry.
pub const MAX_TAPS: usize = 400;
/// The body limit of an upload: a full batch with the longest gate ids fits.
pub const MAX_BODY_BYTES: usize = 128 * 1024;
/// The longest gate id (free text chosen by the operator, e.g. `BT-01`).
pub const MAX_GATE_CHARS: usize = 64;
/// 100 km/h: no train on the line is faster.
pub const MAX_SPEED_M_PER_S: u32 = 28;
/// Two entries of one ticket at two gates of one station this close are two phones.
pub const SAME_STATION_WINDOW_SECS: u64 = 30;
/// A tap from further in the future than this (gate clock) is refused.
const MAX_FUTURE_SECS: u64 = 300;
/// A tap older than this is refused (a gate offline longer has bigger problems).
const MAX_AGE_SECS: u64 = 45 * 86_400;
/// The decision code of an accepted tap; the rest are refusal reasons (`gate::RefusalReason`).
pub const ACCEPT: &str = "accept";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Entry,
    Exit,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Entry => "entry",
            Direction::Exit => "exit",
        }
    }
}

/// One tap as a gate logs it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tap {
    /// 32 lower-case hex digits.
    pub ticket_id: String,
    pub station: u64,
    pub gate: String,
    pub direction: Direction,
    /// Unix seconds, gate clock.
    pub at: u64,
    /// `accept`, or the refusal reason's code.
    pub decision: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapBatch {
    pub taps: Vec<Tap>,
}

/// Checks a batch; the error names the first bad tap's index and problem.
pub fn check_batch(batch: &TapBatch, now_secs: u64) -> Result<(), String> {
    if batch.taps.is_empty() || batch.taps.len() > MAX_TAPS {
        return Err(format!("a batch holds 1 to {MAX_TAPS} taps"));
    }
    for (i, t) in batch.taps.iter().enumerate() {
        let problem = if t.ticket_id.len() != 32 || !t.ticket_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Some("ticket_id must be 32 lower-case hex digits")
        } else if network::station(t.station).is_none() {
            Some("unknown station")
        } else if t.gate.trim().is_empty() || t.gate.chars().count() > MAX_GATE_CHARS || t.gate.chars().any(char::is_control) {
            Some("gate must be 1 to 64 characters, no control characters")
        } else if t.decision.is_empty() || t.decision.len() > 32 || !t.decision.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            Some("decision must be 1 to 32 lower-case letters or '_'")
        } else if t.at > now_secs + MAX_FUTURE_SECS || t.at + MAX_AGE_SECS < now_secs {
            Some("at is too far from the server's time")
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(format!("tap {i}: {p}"));
        }
    }
    Ok(())
}

/// An accepted tap, as clone detection compares them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub station: u64,
    pub gate: String,
    pub direction: Direction,
    pub at: u64,
}

/// Whether one device could have made both accepted taps.
pub fn impossible_pair(a: &Seen, b: &Seen) -> bool {
    let dt = a.at.abs_diff(b.at);
    if a.station != b.station {
        let (Some(x), Some(y)) = (network::station(a.station), network::station(b.station)) else {
            return false;
        };
        let travel_secs = u64::from(x.position_m.abs_diff(y.position_m) / MAX_SPEED_M_PER_S);
        dt < travel_secs
    } else {
        a.gate != b.gate && a.direction == Direction::Entry && b.direction == Direction::Entry && dt < SAME_STATION_WINDOW_SECS
    }
}

/// Whether a ticket's accepted taps (any order) hold an impossible pair.
pub fn shows_a_clone(seen: &mut [Seen]) -> bool {
    seen.sort_by_key(|s| s.at);
    let longest_trip = u64::from(network::LINE_1[13].position_m / MAX_SPEED_M_PER_S).max(SAME_STATION_WINDOW_SECS);
    for (i, a) in seen.iter().enumerate() {
        for b in seen[i + 1..].iter().take_while(|b| b.at - a.at <= longest_trip) {
            if impossible_pair(a, b) {
                return true;
            }
        }
    }
    false
}

/// What an upload did (the answer, recorded under the key).
#[derive(Debug, serde::Serialize)]
pub struct TapReceipt {
    /// Taps stored now.
    pub stored: usize,
    /// Taps already stored before (sent by another gate, or an earlier upload).
    pub duplicates: usize,
    /// Tickets this upload revoked (ticket ids only: operators see nothing of riders).
    pub revoked: Vec<String>,
}

fn seen_of(station: i64, gate: String, direction: String, at: i64) -> Seen {
    Seen {
        station: station as u64,
        gate,
        direction: if direction == "exit" { Direction::Exit } else { Direction::Entry },
        at: at as u64,
    }
}

fn receipt_body(total: usize, stored: usize, revoked: Vec<String>) -> DbResult<String> {
    serde_json::to_string(&TapReceipt { stored, duplicates: total.saturating_sub(stored), revoked })
        .map_err(|e| crate::db::DbError::Corrupt(e.to_string()))
}

/// Stores the taps, revokes the tickets they show cloned and records the key's answer, in one
/// transaction. Returns the answer body.
pub async fn store_batch(db: &Db, operator_account: &str, key: &str, taps: Vec<Tap>) -> DbResult<String> {
    let ctx = "storing gate taps";
    let now = now_millis();
    let accepted: BTreeSet<String> =
        taps.iter().filter(|t| t.decision == ACCEPT).map(|t| t.ticket_id.clone()).collect();
    let total = taps.len();
    match db {
        Db::Sqlite(pool) => {
            let (operator, key) = (operator_account.to_string(), key.to_string());
            pool.write(ctx, move |tx| {
                let mut stored = 0;
                for t in &taps {
                    stored += tx
                        .execute(
                            "INSERT INTO ticket_taps(ticket_id, station, gate, direction, at, decision, operator_id, received_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
                            rusqlite::params![
                                t.ticket_id, t.station as i64, t.gate, t.direction.as_str(), t.at as i64, t.decision, operator, now
                            ],
                        )
                        .map_err(sqlite::q(ctx))?;
                }
                let mut revoked = Vec::new();
                for ticket in &accepted {
                    let owner: Option<(String, i64)> = tx
                        .query_row("SELECT account_id, valid_until FROM tickets WHERE id = ?1", [ticket], |r| Ok((r.get(0)?, r.get(1)?)))
                        .map(Some)
                        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
                        .map_err(sqlite::q(ctx))?;
                    let Some((account, valid_until)) = owner else { continue };
                    let mut stmt = tx
                        .prepare_cached("SELECT station, gate, direction, at FROM ticket_taps WHERE ticket_id = ?1 AND decision = 'accept'")
                        .map_err(sqlite::q(ctx))?;
                    let mut seen = stmt
                        .query_map([ticket], |r| Ok(seen_of(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Seen>>>())
                        .map_err(sqlite::q(ctx))?;
                    if shows_a_clone(&mut seen) && revocations::revoke_sqlite(tx, ticket, &account, valid_until, CLONE_DETECTED)? {
                        revoked.push(ticket.clone());
                    }
                }
                let body = receipt_body(total, stored, revoked)?;
                idempotency::finish_sqlite(tx, &operator, &key, 200, &body)?;
                Ok(body)
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            // The owners' feeds are locked first (the lock order of every feed writer), which
            // also serialises two uploads about the same ticket, so neither misses the other's taps.
            let ids: Vec<String> = accepted.iter().cloned().collect();
            let owners: BTreeMap<String, (String, i64)> = client
                .query("SELECT id, account_id, valid_until FROM tickets WHERE id = ANY($1)", &[&ids])
                .await
                .map_err(postgres::q(ctx))?
                .into_iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect();
            let feed_names: BTreeSet<String> = owners.values().map(|(account, _)| account_feed(account)).collect();
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let mut locked = BTreeMap::new();
            for name in &feed_names {
                locked.insert(name.clone(), feed::lock_pg(&tx, name).await?);
            }
            let insert = tx
                .prepare_cached(
                    "INSERT INTO ticket_taps(ticket_id, station, gate, direction, at, decision, operator_id, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(postgres::q(ctx))?;
            let mut stored = 0;
            for t in &taps {
                stored += tx
                    .execute(
                        &insert,
                        &[&t.ticket_id, &(t.station as i64), &t.gate, &t.direction.as_str(), &(t.at as i64), &t.decision, &operator_account, &now],
                    )
                    .await
                    .map_err(postgres::q(ctx))? as usize;
            }
            let mut revoked = Vec::new();
            for (ticket, (account, valid_until)) in &owners {
                let mut seen: Vec<Seen> = tx
                    .query(
                        "SELECT station, gate, direction, at FROM ticket_taps WHERE ticket_id = $1 AND decision = 'accept'",
                        &[ticket],
                    )
                    .await
                    .map_err(postgres::q(ctx))?
                    .into_iter()
                    .map(|r| seen_of(r.get(0), r.get(1), r.get(2), r.get(3)))
                    .collect();
                if !shows_a_clone(&mut seen) {
                    continue;
                }
                let Some(owner_feed) = locked.get(&account_feed(account)) else { continue };
                if revocations::revoke_pg(&tx, owner_feed, ticket, account, *valid_until, CLONE_DETECTED).await? {
                    revoked.push(ticket.clone());
                }
            }
            let body = receipt_body(total, stored, revoked)?;
            idempotency::finish_pg(&tx, operator_account, key, 200, &body).await?;
            drop(locked);
            tx.commit().await.map_err(postgres::q(ctx))?;
            Ok(body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(station: u64, gate: &str, direction: Direction, at: u64) -> Seen {
        Seen { station, gate: gate.into(), direction, at }
    }

    #[test]
    fn clones_are_taps_no_single_rider_could_make() {
        use Direction::*;
        // Bến Thành to Suối Tiên (19.7 km) takes at least ~12 minutes even at 100 km/h.
        assert!(impossible_pair(&seen(1, "g1", Entry, 1000), &seen(14, "g1", Entry, 1000 + 300)));
        assert!(!impossible_pair(&seen(1, "g1", Entry, 1000), &seen(14, "g1", Exit, 1000 + 1800)));
        // Neighbouring stations 700 m apart: 25 s at 100 km/h.
        assert!(impossible_pair(&seen(1, "a", Entry, 0), &seen(2, "b", Entry, 10)));
        assert!(!impossible_pair(&seen(1, "a", Entry, 0), &seen(2, "b", Exit, 120)));
        // One station, two gates, one slot: two phones.
        assert!(impossible_pair(&seen(5, "g1", Entry, 0), &seen(5, "g2", Entry, 12)));
        assert!(!impossible_pair(&seen(5, "g1", Entry, 0), &seen(5, "g2", Entry, 45)));
        assert!(!impossible_pair(&seen(5, "g1", Entry, 0), &seen(5, "g1", Entry, 5)), "one gate: the gate's pass-back");
        assert!(!impossible_pair(&seen(5, "g1", Entry, 0), &seen(5, "g2", Exit, 5)), "changed their mind");

        let mut day = vec![seen(1, "a", Entry, 0), seen(8, "c", Exit, 1200), seen(8, "d", Entry, 30_000), seen(1, "b", Exit, 31_300)];
        assert!(!shows_a_clone(&mut day));
        day.push(seen(12, "x", Entry, 31_000));
        assert!(shows_a_clone(&mut day));
    }

    #[test]
    fn batches_are_checked() {
        let now = 1_800_000_000;
        let tap = |ticket: &str, gate: &str, at: u64| Tap {
            ticket_id: ticket.into(),
            station: 3,
            gate: gate.into(),
            direction: Direction::Entry,
            at,
            decision: "accept".into(),
        };
        let ok = "0123456789abcdef0123456789abcdef";
        assert!(check_batch(&TapBatch { taps: vec![tap(ok, "G-1", now)] }, now).is_ok());
        assert!(check_batch(&TapBatch { taps: vec![] }, now).is_err());
        assert!(check_batch(&TapBatch { taps: vec![tap(ok, "G-1", now); MAX_TAPS + 1] }, now).is_err());
        assert!(check_batch(&TapBatch { taps: vec![tap("0123456789ABCDEF0123456789ABCDEF", "G-1", now)] }, now).is_err());
        assert!(check_batch(&TapBatch { taps: vec![tap(ok, "gate\n1", now)] }, now).is_err());
        assert!(check_batch(&TapBatch { taps: vec![tap(ok, "G-1", now + 3600)] }, now).is_err());
        let mut far = tap(ok, "G-1", now);
        far.station = 99;
        assert_eq!(check_batch(&TapBatch { taps: vec![far] }, now).unwrap_err(), "tap 0: unknown station");
    }
}
