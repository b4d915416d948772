//! The one outbox (DESIGN §1): everything the phone asks the server to do is a command written
//! here in the same transaction as the local change that caused it. Each command carries an
//! idempotency key made on the phone, so however often it is sent (app killed mid-send, response
//! lost, flaky network) the server does it once and answers every retry with the first result.
//!
//! One sender drains it ([`drain`]): every due command in one wake-up, back to back over one
//! connection, so the radio wakes rarely. A transient failure sets the command's next attempt
//! with exponential backoff and full jitter; nothing retries on a tight timer. The sender is
//! woken by new commands and by the network coming back (see `Core::outbox_wakeup`).

use rand::Rng;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::identity::Session;
use crate::store::{now_millis, Store};
use crate::sync::client::Method;

/// Where a command stands, as the resident sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for a network (or for its next attempt after a failure).
    Waiting,
    /// Being sent right now.
    Sending,
    /// Done by the server; `result` holds its answer.
    Sent,
    /// Refused by the server for a reason retrying cannot fix; `rejection` says why.
    Rejected,
}

impl OutboxState {
    fn as_str(self) -> &'static str {
        match self {
            OutboxState::Waiting => "waiting",
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> OutboxState {
        match s {
            "sending" => OutboxState::Sending,
            "sent" => OutboxState::Sent,
            "rejected" => OutboxState::Rejected,
            _ => OutboxState::Waiting,
        }
    }
}

/// A server's refusal of a command: its stable code and message, and any details it sent (for
/// a submission, the field issues).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    pub idempotency_key: String,
    /// `<capability-object>.<verb>`, e.g. `case.submit`.
    pub kind: String,
    /// What the command is about (a draft id), so a screen can show its state.
    pub subject: String,
    pub state: OutboxState,
    pub attempts: u32,
    pub result: Option<serde_json::Value>,
    pub rejection: Option<Rejection>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What a command kind is: where it is sent, and what its answer changes locally (in the same
/// transaction that records the answer).
pub(crate) struct Route {
    /// The path to POST to, made from the command's subject (`v1/cases/{case_id}/answer`).
    pub path: fn(&str) -> String,
    pub on_sent: fn(&Transaction<'_>, &str, &serde_json::Value) -> Result<()>,
    pub on_rejected: fn(&Transaction<'_>, &str, &Rejection) -> Result<()>,
}

/// A command sent by its own code instead of one JSON POST (a file uploaded in chunks). `send`
/// gets the command's subject and answers like a JSON route would.
pub(crate) struct CustomRoute {
    pub send: for<'a> fn(&'a Store, &'a Session<'a>, &'a str) -> crate::drafts::attachments::UploadFuture<'a>,
    pub on_sent: fn(&Transaction<'_>, &str, &serde_json::Value) -> Result<()>,
    pub on_rejected: fn(&Transaction<'_>, &str, &Rejection) -> Result<()>,
}

enum Sender {
    Json(Route),
    Custom(CustomRoute),
}

impl Sender {
    fn on_sent(&self) -> fn(&Transaction<'_>, &str, &serde_json::Value) -> Result<()> {
        match self {
            Sender::Json(r) => r.on_sent,
            Sender::Custom(r) => r.on_sent,
        }
    }

    fn on_rejected(&self) -> fn(&Transaction<'_>, &str, &Rejection) -> Result<()> {
        match self {
            Sender::Json(r) => r.on_rejected,
            Sender::Custom(r) => r.on_rejected,
        }
    }
}

/// The command kinds this app version knows. A command of an unknown kind (written by a newer
/// app, then downgraded) stays waiting rather than being dropped.
fn route(kind: &str) -> Option<Sender> {
    if kind == crate::drafts::attachments::UPLOAD_KIND {
        return Some(Sender::Custom(CustomRoute {
            send: crate::drafts::attachments::send_upload,
            on_sent: crate::drafts::attachments::uploaded,
            on_rejected: crate::drafts::attachments::upload_refused,
        }));
    }
    if kind == crate::drafts::backup::BACKUP_KIND {
        return Some(Sender::Custom(CustomRoute {
            send: crate::drafts::backup::send,
            on_sent: crate::drafts::backup::backed_up,
            on_rejected: crate::drafts::backup::backup_refused,
        }));
    }
    if let Some(route) = crate::tickets::gate::taplog::route(kind) {
        return Some(Sender::Json(route));
    }
    if let Some(route) = crate::tickets::commands::route(kind) {
        return Some(Sender::Json(route));
    }
    if let Some(route) = crate::signing::commands::route(kind) {
        return Some(Sender::Json(route));
    }
    crate::drafts::commands::route(kind).map(Sender::Json)
}

/// A command that names a file (its SHA-256 in the payload) waits until that file's upload,
/// queued before it, is done: the case must not reach the server before its files. Returns
/// when the blocking upload is due next, so the waiting command is due then too (no busy loop).
fn blocked_until(store: &Store, command: &Due) -> Result<Option<i64>> {
    if command.kind == crate::drafts::attachments::UPLOAD_KIND {
        return Ok(None);
    }
    store.read("reading the outbox", |c| {
        c.query_row(
            "SELECT max(next_attempt_at) FROM outbox WHERE id < ?1 AND kind = ?2 \
             AND state IN ('waiting', 'sending') AND instr(?3, subject) > 0",
            params![command.id, crate::drafts::attachments::UPLOAD_KIND, command.payload],
            |r| r.get(0),
        )
    })
}

/// Takes a waiting command for sending; false when something else (a refused upload it needed)
/// settled it since the drain began.
fn claim(store: &Store, id: i64) -> Result<bool> {
    store.write("updating a command", |tx| {
        let n = tx
            .execute(
                "UPDATE outbox SET state = ?3, updated_at = ?2, account_id = coalesce(account_id, \
                     (SELECT account_id FROM session WHERE id = 1)) WHERE id = ?1 AND state = 'waiting'",
                params![id, now_millis(), OutboxState::Sending.as_str()],
            )
            .map_err(Error::db("updating a command"))?;
        Ok(n == 1)
    })
}

fn postpone_to(store: &Store, id: i64, at: i64) -> Result<()> {
    store.write("postponing a command", |tx| {
        tx.execute("UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1", params![id, at])
            .map_err(Error::db("postponing a command"))?;
        Ok(())
    })
}

/// Writes a command into the outbox inside the caller's transaction and returns its key.
pub(crate) fn enqueue(tx: &Transaction<'_>, kind: &str, subject: &str, payload: &serde_json::Value) -> Result<String> {
    let key = new_idempotency_key();
    let now = now_millis();
    tx.execute(
        "INSERT INTO outbox(idempotency_key, kind, subject, payload, state, attempts, next_attempt_at, \
             created_at, updated_at, account_id) VALUES (?1, ?2, ?3, ?4, 'waiting', 0, ?5, ?5, ?5, \
             (SELECT account_id FROM session WHERE id = 1))",
        params![key, kind, subject, payload.to_string(), now],
    )
    .map_err(Error::db("queueing a command"))?;
    Ok(key)
}

/// A version 4 UUID made from the system's secure random source.
fn new_idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

const SELECT_ITEM: &str = "SELECT idempotency_key, kind, subject, state, attempts, result, rejection, created_at, \
     updated_at FROM outbox";

fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxItem> {
    let result: Option<String> = r.get(5)?;
    let rejection: Option<String> = r.get(6)?;
    Ok(OutboxItem {
        idempotency_key: r.get(0)?,
        kind: r.get(1)?,
        subject: r.get(2)?,
        state: OutboxState::parse(&r.get::<_, String>(3)?),
        attempts: r.get::<_, i64>(4)?.max(0) as u32,
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        rejection: rejection.and_then(|s| serde_json::from_str(&s).ok()),
        created_at_ms: r.get(7)?,
        updated_at_ms: r.get(8)?,
    })
}

/// Every command, newest first; only those about `subject` when given.
pub fn items(store: &Store, subject: Option<&str>) -> Result<Vec<OutboxItem>> {
    store.read("listing the outbox", |c| {
        let mut stmt = c.prepare_cached(&format!(
            "{SELECT_ITEM} WHERE ?1 IS NULL OR subject = ?1 ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map([subject], item_from_row)?;
        rows.collect()
    })
}

/// After a crash or app kill, a command left `sending` may or may not have reached the server:
/// it goes back to `waiting`, and its idempotency key makes the resend safe.
pub(crate) fn recover(store: &Store) -> Result<()> {
    store.write("recovering the outbox", |tx| {
        tx.execute("UPDATE outbox SET state = 'waiting' WHERE state = 'sending'", [])
            .map_err(Error::db("recovering the outbox"))?;
        Ok(())
    })
}

/// Makes every postponed command due now: the network came back, or the resident asked to send.
/// Backoff protects the server from a failing phone; it must not delay a phone that is online again.
pub(crate) fn make_due(store: &Store) -> Result<()> {
    store.write("rescheduling the outbox", |tx| {
        tx.execute("UPDATE outbox SET next_attempt_at = ?1 WHERE state = 'waiting' AND next_attempt_at > ?1", [now_millis()])
            .map_err(Error::db("rescheduling the outbox"))?;
        Ok(())
    })
}

/// The commands the logged-in account may send: its own and those queued while logged out.
/// Another account's commands wait for that account's next login (never sent with these tokens).
const FOR_THIS_ACCOUNT: &str = "(account_id IS NULL OR account_id = (SELECT account_id FROM session WHERE id = 1))";

/// The earliest time a waiting command of this account is due (for the sender's single timer).
pub(crate) fn next_due_at(store: &Store) -> Result<Option<i64>> {
    store.read("reading the outbox", |c| {
        c.query_row(&format!("SELECT min(next_attempt_at) FROM outbox WHERE state = 'waiting' AND {FOR_THIS_ACCOUNT}"), [], |r| {
            r.get(0)
        })
    })
}

/// What one drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub sent: u32,
    pub rejected: u32,
    /// Commands still waiting (offline, server busy, or not due yet).
    pub waiting: u32,
    /// The drain stopped because the network or the server is away.
    pub offline: bool,
    /// The drain stopped because the session ended; commands wait for the next login.
    pub login_required: bool,
}

/// Backoff for a command's next attempt: exponential from 2 s, capped at 15 minutes, full jitter.
fn backoff_ms(attempts: u32) -> i64 {
    let cap = (2_000i64 << attempts.min(9)).min(15 * 60 * 1000);
    rand::thread_rng().gen_range(cap / 2..=cap)
}

struct Due {
    id: i64,
    key: String,
    kind: String,
    subject: String,
    payload: String,
    attempts: u32,
}

/// Sends every due command once, in order. Stops early (leaving the rest waiting) when the
/// network, the server or the session is away.
pub(crate) async fn drain(store: &Store, session: &Session<'_>) -> Result<DrainReport> {
    let mut report = DrainReport::default();
    let now = now_millis();
    let due: Vec<Due> = store.read("reading due commands", |c| {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT id, idempotency_key, kind, subject, payload, attempts FROM outbox \
             WHERE state = 'waiting' AND next_attempt_at <= ?1 AND {FOR_THIS_ACCOUNT} ORDER BY id"
        ))?;
        let rows = stmt.query_map([now], |r| {
            Ok(Due {
                id: r.get(0)?,
                key: r.get(1)?,
                kind: r.get(2)?,
                subject: r.get(3)?,
                payload: r.get(4)?,
                attempts: r.get::<_, i64>(5)?.max(0) as u32,
            })
        })?;
        rows.collect()
    })?;
    for (i, command) in due.iter().enumerate() {
        let Some(route) = route(&command.kind) else {
            tracing::warn!(kind = %command.kind, "outbox: command of a kind this version cannot send; kept");
            report.waiting += 1;
            continue;
        };
        if let Some(upload_due) = blocked_until(store, command)? {
            postpone_to(store, command.id, upload_due)?;
            report.waiting += 1;
            continue;
        }
        if !claim(store, command.id)? {
            continue;
        }
        let sent: Result<serde_json::Value> = match &route {
            Sender::Json(route) => {
                session
                    .send_authorized(
                        Method::POST,
                        &(route.path)(&command.subject),
                        Some((command.payload.clone().into_bytes(), "application/json")),
                        Some(&command.key),
                    )
                    .await
            }
            Sender::Custom(route) => (route.send)(store, session, &command.subject).await,
        };
        match sent {
            Ok(result) => {
                store.write("recording a sent command", |tx| {
                    tx.execute(
                        "UPDATE outbox SET state = 'sent', result = ?2, attempts = attempts + 1, updated_at = ?3 \
                         WHERE id = ?1",
                        params![command.id, result.to_string(), now_millis()],
                    )
                    .map_err(Error::db("recording a sent command"))?;
                    (route.on_sent())(tx, &command.subject, &result)
                })?;
                report.sent += 1;
            }
            Err(Error::ServerRejected { status, code, message, details }) if is_final(status, &code) => {
                reject(store, command, &route, &Rejection { code, message, details })?;
                report.rejected += 1;
            }
            Err(e) => {
                // Transient (offline, busy, 409 still in progress, session ended): try later.
                let delay = backoff_ms(command.attempts);
                store.write("postponing a command", |tx| {
                    tx.execute(
                        "UPDATE outbox SET state = 'waiting', attempts = attempts + 1, next_attempt_at = ?2, \
                         last_error = ?3, updated_at = ?4 WHERE id = ?1",
                        params![command.id, now_millis() + delay, e.to_string(), now_millis()],
                    )
                    .map_err(Error::db("postponing a command"))?;
                    Ok(())
                })?;
                let remaining = (due.len() - i) as u32;
                match e {
                    Error::Offline(_) => {
                        report.offline = true;
                        report.waiting += remaining;
                        return Ok(report);
                    }
                    Error::LoginRequired { .. } => {
                        report.login_required = true;
                        report.waiting += remaining;
                        return Ok(report);
                    }
                    _ => report.waiting += 1,
                }
            }
        }
    }
    Ok(report)
}

/// A 4xx other than 408/409/425/429 is the server's final word on this command; so is a 409
/// `invalid_transition` (the case moved on: an answer to a question no longer asked), unlike a
/// 409 `request_in_progress`, which a retry resolves.
fn is_final(status: u16, code: &str) -> bool {
    let conflict_for_good = status == 409 && code == INVALID_TRANSITION;
    conflict_for_good || ((400..500).contains(&status) && !matches!(status, 401 | 408 | 409 | 425 | 429))
}

/// The server's code for a command that no longer fits the state of its subject.
pub const INVALID_TRANSITION: &str = "invalid_transition";

fn reject(store: &Store, command: &Due, route: &Sender, rejection: &Rejection) -> Result<()> {
    let json = serde_json::to_string(rejection).map_err(|e| Error::BadData(e.to_string()))?;
    store.write("recording a refused command", |tx| {
        tx.execute(
            "UPDATE outbox SET state = 'rejected', rejection = ?2, attempts = attempts + 1, updated_at = ?3 \
             WHERE id = ?1",
            params![command.id, json, now_millis()],
        )
        .map_err(Error::db("recording a refused command"))?;
        (route.on_rejected())(tx, &command.subject, rejection)
    })
}

/// The state of the command with this key, if it exists.
pub fn item(store: &Store, key: &str) -> Result<Option<OutboxItem>> {
    store.read("reading a command", |c| {
        c.query_row(&format!("{SELECT_ITEM} WHERE idempotency_key = ?1"), [key], item_from_row).optional()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_v4_uuids_and_unique() {
        let a = new_idempotency_key();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, new_idempotency_key());
    }

    #[test]
    fn backoff_grows_and_is_capped_at_fifteen_minutes() {
        for attempts in 0..40 {
            let d = backoff_ms(attempts);
            assert!(d >= 1_000 && d <= 15 * 60 * 1000, "{attempts}: {d}");
        }
        assert!(backoff_ms(0) <= 2_000);
        assert!(backoff_ms(20) >= 7 * 60 * 1000);
    }

    #[test]
    fn final_and_transient_statuses() {
        for s in [400, 403, 404, 410, 413, 422] {
            assert!(is_final(s, "any"), "{s}");
        }
        for s in [401, 408, 409, 425, 429, 500, 503] {
            assert!(!is_final(s, "request_in_progress"), "{s}");
        }
        assert!(is_final(409, INVALID_TRANSITION), "the case moved on: retrying cannot help");
    }
}
