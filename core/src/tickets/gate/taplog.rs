//! The gate's durable tap log, in the core's SQLite store: every decision (accepts and
//! refusals, for the operator's statistics and fraud detection) and every accepted tap heard
//! from a peer (so pass-back survives a restart). Accepted taps of the last pass-back window
//! are replayed into the validator when the gate starts.
//!
//! Upload goes through the one outbox: [`queue_upload`] takes this gate's taps not yet queued,
//! up to [`UPLOAD_BATCH`], into one `gate.taps` command (POST `/v1/operator/taps`) and marks
//! them in the same transaction; the command's answer marks them uploaded.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use super::decision::Decision;
use super::state::Tap;
use super::{Direction, GateConfig};
use crate::error::{Error, Result};
use crate::outbox::{self, Rejection, Route};
use crate::store::Store;

pub const UPLOAD_KIND: &str = "gate.taps";
pub const UPLOAD_PATH: &str = "v1/operator/taps";
/// Taps per upload command: well inside the server's body limit.
pub const UPLOAD_BATCH: usize = 400;

/// Where a logged tap came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Decided by this gate.
    Local,
    /// Heard from a peer gate of the station (not uploaded: its own gate does that).
    Peer,
}

/// Writes one decision of this gate. `now`: gate clock, unix seconds.
pub fn log_decision(store: &Store, config: &GateConfig, decision: &Decision, now: u64) -> Result<()> {
    let (slot_start, consumed_until) = match decision {
        Decision::Accept(a) => (Some(a.slot_start), a.consumed_until),
        Decision::Refuse(_) => (None, None),
    };
    insert(
        store,
        &config.gate_id,
        config.station_id,
        config.direction,
        decision.ticket_id(),
        decision.code(),
        slot_start,
        consumed_until,
        now,
        Source::Local,
    )
}

/// Writes an accepted tap this gate did not decide (a peer's).
pub fn log_peer_tap(store: &Store, peer_gate: &str, station_id: u64, tap: &Tap) -> Result<()> {
    insert(store, peer_gate, station_id, tap.direction, Some(tap.ticket_id), "accept", Some(tap.slot_start), tap.consumed_until, tap.at, Source::Peer)
}

#[allow(clippy::too_many_arguments)]
fn insert(
    store: &Store,
    gate_id: &str,
    station_id: u64,
    direction: Direction,
    ticket_id: Option<[u8; 16]>,
    decision: &str,
    slot_start: Option<u64>,
    consumed_until: Option<u64>,
    at: u64,
    source: Source,
) -> Result<()> {
    let ctx = "logging a gate tap";
    store.write(ctx, |tx| {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO gate_taps(gate_id, station_id, direction, ticket_id, decision, slot_start, consumed_until, \
                 tapped_at, source, upload_batch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .map_err(Error::db(ctx))?;
        stmt.execute(params![
            gate_id,
            station_id as i64,
            direction.as_str(),
            ticket_id.as_ref().map(|id| &id[..]),
            decision,
            slot_start.map(|s| s as i64),
            consumed_until.map(|s| s as i64),
            at as i64,
            match source {
                Source::Local => "local",
                Source::Peer => "peer",
            },
            // Peer taps are uploaded by their own gate, and a code too broken to have a ticket
            // id tells the server nothing: neither is queued for upload.
            match (source, ticket_id) {
                (Source::Peer, _) => Some("peer"),
                (Source::Local, None) => Some("local-only"),
                (Source::Local, Some(_)) => None,
            },
        ])
        .map_err(Error::db(ctx))?;
        Ok(())
    })
}

/// Accepted taps (own and peers') still relevant at `now`: inside the pass-back window, or
/// single journeys still consumed. The validator replays them at start.
pub fn recent_accepted(store: &Store, now: u64, window_s: u64) -> Result<Vec<Tap>> {
    store.read("reading recent gate taps", |c| {
        let mut stmt = c.prepare_cached(
            "SELECT ticket_id, direction, tapped_at, slot_start, consumed_until FROM gate_taps \
             WHERE decision = 'accept' AND (tapped_at >= ?1 OR consumed_until >= ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![now.saturating_sub(window_s) as i64, now as i64], |r| {
            let id: Vec<u8> = r.get(0)?;
            let direction: String = r.get(1)?;
            Ok((id, direction, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?, r.get::<_, Option<i64>>(4)?))
        })?;
        let mut taps = Vec::new();
        for row in rows {
            let (id, direction, at, slot, consumed) = row?;
            let (Ok(ticket_id), Some(direction)) = (<[u8; 16]>::try_from(id.as_slice()), Direction::parse(&direction)) else {
                continue;
            };
            taps.push(Tap {
                ticket_id,
                direction,
                at: at.max(0) as u64,
                slot_start: slot.unwrap_or(0).max(0) as u64,
                consumed_until: consumed.map(|c| c.max(0) as u64),
            });
        }
        Ok(taps)
    })
}

/// One tap as uploaded to `POST /v1/operator/taps`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UploadedTap {
    /// Hex of the 16-byte ticket id.
    pub ticket_id: String,
    pub station: u64,
    pub gate: String,
    pub direction: String,
    /// Gate clock, unix seconds.
    pub at: u64,
    /// `accept` or the refusal reason's code.
    pub decision: String,
}

#[derive(Debug, Clone, Serialize)]
struct UploadBody {
    taps: Vec<UploadedTap>,
}

/// Queues this gate's not yet queued taps (up to [`UPLOAD_BATCH`]) as one `gate.taps` command.
/// Returns the number of taps queued (0: nothing to send, no command).
pub fn queue_upload(store: &Store) -> Result<usize> {
    let ctx = "queueing gate taps for upload";
    store.write(ctx, |tx| {
        let rows: Vec<(i64, UploadedTap)> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id, ticket_id, station_id, gate_id, direction, tapped_at, decision FROM gate_taps \
                     WHERE upload_batch IS NULL ORDER BY id LIMIT ?1",
                )
                .map_err(Error::db(ctx))?;
            let rows = stmt
                .query_map([UPLOAD_BATCH as i64], |r| {
                    let id: Vec<u8> = r.get(1)?;
                    Ok((
                        r.get(0)?,
                        UploadedTap {
                            ticket_id: crate::crypto::hex(&id),
                            station: r.get::<_, i64>(2)?.max(0) as u64,
                            gate: r.get(3)?,
                            direction: r.get(4)?,
                            at: r.get::<_, i64>(5)?.max(0) as u64,
                            decision: r.get(6)?,
                        },
                    ))
                })
                .map_err(Error::db(ctx))?;
            rows.collect::<rusqlite::Result<_>>().map_err(Error::db(ctx))?
        };
        if rows.is_empty() {
            return Ok(0);
        }
        let batch = uuid::Uuid::new_v4().to_string();
        let (first, last) = (rows[0].0, rows[rows.len() - 1].0);
        let n = rows.len();
        let body = UploadBody { taps: rows.into_iter().map(|(_, t)| t).collect() };
        let payload = serde_json::to_value(&body).map_err(|e| Error::BadData(e.to_string()))?;
        outbox::enqueue(tx, UPLOAD_KIND, &batch, &payload)?;
        tx.execute(
            "UPDATE gate_taps SET upload_batch = ?1 WHERE upload_batch IS NULL AND id BETWEEN ?2 AND ?3",
            params![batch, first, last],
        )
        .map_err(Error::db(ctx))?;
        Ok(n)
    })
}

/// How the outbox sends `gate.taps`.
pub(crate) fn route(kind: &str) -> Option<Route> {
    (kind == UPLOAD_KIND).then_some(Route { path: |_| UPLOAD_PATH.to_string(), on_sent: uploaded, on_rejected: upload_refused })
}

fn uploaded(tx: &Transaction<'_>, batch: &str, _result: &serde_json::Value) -> Result<()> {
    tx.execute("UPDATE gate_taps SET uploaded = 1 WHERE upload_batch = ?1", [batch])
        .map_err(Error::db("recording uploaded gate taps"))?;
    Ok(())
}

fn upload_refused(_tx: &Transaction<'_>, batch: &str, rejection: &Rejection) -> Result<()> {
    // The taps stay in the log (not marked uploaded) for the operator to inspect.
    tracing::warn!(batch, code = %rejection.code, "gate taps refused by the server");
    Ok(())
}

/// How long the log keeps taps the server has (or that are never sent): 30 days, for the
/// operator's questions about a recent tap; the server keeps them for good.
pub const KEEP_S: u64 = 30 * 86_400;

/// Forgets taps older than [`KEEP_S`] that the server acknowledged, or that are never uploaded
/// (peers' taps, codes without a ticket id). Taps still waiting for the server are kept however
/// old. Returns the number of rows removed.
pub fn prune(store: &Store, now: u64) -> Result<usize> {
    let ctx = "pruning the gate tap log";
    store.write(ctx, |tx| {
        tx.execute(
            "DELETE FROM gate_taps WHERE tapped_at < ?1 AND (uploaded = 1 OR upload_batch IN ('peer', 'local-only'))",
            [now.saturating_sub(KEEP_S) as i64],
        )
        .map_err(Error::db(ctx))
    })
}

/// Counts for the gate's status screen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapLogStatus {
    pub logged: u64,
    pub accepted: u64,
    /// Own taps not yet acknowledged by the server.
    pub not_uploaded: u64,
}

pub fn status(store: &Store) -> Result<TapLogStatus> {
    store.read("counting gate taps", |c| {
        c.query_row(
            "SELECT count(*), coalesce(sum(decision = 'accept'), 0), \
             coalesce(sum(source = 'local' AND ticket_id IS NOT NULL AND uploaded = 0), 0) FROM gate_taps",
            [],
            |r| {
                Ok(TapLogStatus {
                    logged: r.get::<_, i64>(0)? as u64,
                    accepted: r.get::<_, i64>(1)? as u64,
                    not_uploaded: r.get::<_, i64>(2)? as u64,
                })
            },
        )
    })
}

/// Trust material kept across restarts: the operator keys (JSON) and the signed revocation
/// list, so a gate that restarts without its server link still decides.
pub fn save_trust(store: &Store, name: &str, value: &[u8]) -> Result<()> {
    store.write("saving gate trust material", |tx| {
        tx.execute("INSERT OR REPLACE INTO gate_trust(name, value) VALUES (?1, ?2)", params![name, value])
            .map_err(Error::db("saving gate trust material"))?;
        Ok(())
    })
}

pub fn load_trust(store: &Store, name: &str) -> Result<Option<Vec<u8>>> {
    store.read("reading gate trust material", |c| {
        c.query_row("SELECT value FROM gate_trust WHERE name = ?1", [name], |r| r.get(0)).optional()
    })
}
