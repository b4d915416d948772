//! Signature requests in both databases. Every write that the resident must learn of appends to
//! their account feed and to the request's audit trail in the same transaction; on PostgreSQL the
//! feed head is locked first and the request row second (feed.rs), so writers never deadlock.

use congdan_core::signing::api::{DocumentRef, RequestState, SignatureRequestView, SignatureStateChange, REQUEST_CHANGE, STATE_CHANGE};

use super::audit;
use crate::cases::idempotency;
use crate::db::{now_millis, postgres, sqlite, Db, DbError, DbResult};
use rusqlite::OptionalExtension;
use crate::feed;
use crate::identity::store::account_feed;

/// A stored request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow {
    pub id: String,
    pub agency_code: String,
    pub account_id: String,
    pub created_by: String,
    pub title: String,
    pub summary: String,
    pub purpose: String,
    pub document_sha256: String,
    pub document_size: i64,
    pub document_type: String,
    pub document_link: Option<String>,
    /// The account whose upload holds the document, when the agency uploaded it.
    pub document_owner: Option<String>,
    pub created_at_ms: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// `pending`, `signed`, `declined` or `cancelled` as stored; `expired` is a pending request
    /// past its expiry (see [`RequestRow::state_at`]).
    pub state: String,
    pub cancelled_at_ms: Option<i64>,
    pub cancel_reason: Option<String>,
    pub decided_at_ms: Option<i64>,
    pub decision: Option<Vec<u8>>,
    pub decision_signed_sha256: Option<Vec<u8>>,
    pub decision_key_id: Option<Vec<u8>>,
    pub decision_response: Option<String>,
}

impl RequestRow {
    pub fn state_at(&self, now_secs: i64) -> RequestState {
        match RequestState::parse(&self.state) {
            Some(RequestState::Pending) if now_secs >= self.expires_at => RequestState::Expired,
            Some(s) => s,
            None => RequestState::Pending,
        }
    }

    pub fn view(&self, now_secs: i64) -> SignatureRequestView {
        SignatureRequestView {
            id: self.id.clone(),
            agency_code: self.agency_code.clone(),
            title: self.title.clone(),
            summary: self.summary.clone(),
            purpose: self.purpose.clone(),
            document: DocumentRef {
                sha256: self.document_sha256.clone(),
                size: self.document_size.max(0) as u64,
                content_type: self.document_type.clone(),
                link: self.document_link.clone(),
            },
            created_at: (self.created_at_ms / 1000).max(0) as u64,
            expires_at: self.expires_at.max(0) as u64,
            state: self.state_at(now_secs),
        }
    }
}

const COLUMNS: &str = "id, agency_code, account_id, created_by, title, summary, purpose, document_sha256, document_size, \
    document_type, document_link, document_owner, created_at, expires_at, state, cancelled_at, cancel_reason, decided_at, \
    decision, decision_signed_sha256, decision_key_id, decision_response";

fn row_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRow> {
    Ok(RequestRow {
        id: r.get(0)?,
        agency_code: r.get(1)?,
        account_id: r.get(2)?,
        created_by: r.get(3)?,
        title: r.get(4)?,
        summary: r.get(5)?,
        purpose: r.get(6)?,
        document_sha256: r.get(7)?,
        document_size: r.get(8)?,
        document_type: r.get(9)?,
        document_link: r.get(10)?,
        document_owner: r.get(11)?,
        created_at_ms: r.get(12)?,
        expires_at: r.get(13)?,
        state: r.get(14)?,
        cancelled_at_ms: r.get(15)?,
        cancel_reason: r.get(16)?,
        decided_at_ms: r.get(17)?,
        decision: r.get(18)?,
        decision_signed_sha256: r.get(19)?,
        decision_key_id: r.get(20)?,
        decision_response: r.get(21)?,
    })
}

fn row_pg(r: &tokio_postgres::Row) -> RequestRow {
    RequestRow {
        id: r.get(0),
        agency_code: r.get(1),
        account_id: r.get(2),
        created_by: r.get(3),
        title: r.get(4),
        summary: r.get(5),
        purpose: r.get(6),
        document_sha256: r.get(7),
        document_size: r.get(8),
        document_type: r.get(9),
        document_link: r.get(10),
        document_owner: r.get(11),
        created_at_ms: r.get(12),
        expires_at: r.get(13),
        state: r.get(14),
        cancelled_at_ms: r.get(15),
        cancel_reason: r.get(16),
        decided_at_ms: r.get(17),
        decision: r.get(18),
        decision_signed_sha256: r.get(19),
        decision_key_id: r.get(20),
        decision_response: r.get(21),
    }
}

fn json<T: serde::Serialize>(v: &T) -> DbResult<String> {
    serde_json::to_string(v).map_err(|e| DbError::Corrupt(e.to_string()))
}

fn created_detail(r: &RequestRow) -> String {
    serde_json::json!({
        "agency_code": r.agency_code,
        "account_id": r.account_id,
        "title": r.title,
        "document_sha256": r.document_sha256,
        "summary_sha256": congdan_core::crypto::hex(&congdan_core::signing::summary_hash(&r.summary)),
        "purpose": r.purpose,
        "expires_at": r.expires_at,
    })
    .to_string()
}

/// Stores a new request, puts it on the resident's feed, starts its audit trail and records
/// `answer` under the creating staff member's idempotency `key`, in one transaction: a retry of the
/// key finds either all of it or none.
pub async fn create(db: &Db, r: RequestRow, key: &str, answer: &str) -> DbResult<()> {
    let ctx = "creating a signature request";
    let view = json(&r.view(r.created_at_ms / 1000))?;
    let detail = created_detail(&r);
    let feed_name = account_feed(&r.account_id);
    let (key, answer) = (key.to_string(), answer.to_string());
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                tx.execute(
                    "INSERT INTO signature_requests(id, agency_code, account_id, created_by, title, summary, purpose, \
                     document_sha256, document_size, document_type, document_link, document_owner, created_at, expires_at, \
                     state, audit_head, audit_len) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'pending', ?15, 0)",
                    rusqlite::params![
                        r.id, r.agency_code, r.account_id, r.created_by, r.title, r.summary, r.purpose, r.document_sha256,
                        r.document_size, r.document_type, r.document_link, r.document_owner, r.created_at_ms, r.expires_at,
                        audit::GENESIS.to_vec()
                    ],
                )
                .map_err(sqlite::q(ctx))?;
                audit::append_sqlite(tx, &r.id, audit::CREATED, &r.created_by, &detail, r.created_at_ms)?;
                feed::append_sqlite(tx, &feed_name, REQUEST_CHANGE, &r.id, &view)?;
                idempotency::finish_sqlite(tx, &r.created_by, &key, 201, &answer)?;
                Ok(())
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let p = |e| postgres::q(ctx)(e);
            let locked = feed::lock_pg(&tx, &feed_name).await?;
            tx.execute(
                "INSERT INTO signature_requests(id, agency_code, account_id, created_by, title, summary, purpose, \
                 document_sha256, document_size, document_type, document_link, document_owner, created_at, expires_at, \
                 state, audit_head, audit_len) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'pending', $15, 0)",
                &[
                    &r.id, &r.agency_code, &r.account_id, &r.created_by, &r.title, &r.summary, &r.purpose, &r.document_sha256,
                    &r.document_size, &r.document_type, &r.document_link, &r.document_owner, &r.created_at_ms, &r.expires_at,
                    &audit::GENESIS.to_vec(),
                ],
            )
            .await
            .map_err(p)?;
            audit::append_pg(&tx, &r.id, audit::CREATED, &r.created_by, &detail, r.created_at_ms).await?;
            locked.append(REQUEST_CHANGE, &r.id, &view).await?;
            idempotency::finish_pg(&tx, &r.created_by, &key, 201, &answer).await?;
            tx.commit().await.map_err(p)
        }
    }
}

pub async fn get(db: &Db, id: &str) -> DbResult<Option<RequestRow>> {
    let ctx = "reading a signature request";
    let id = id.to_string();
    match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| c.query_row(&format!("SELECT {COLUMNS} FROM signature_requests WHERE id = ?1"), [id], row_sqlite).optional())
                .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let stmt = client
                .prepare_cached(&format!("SELECT {COLUMNS} FROM signature_requests WHERE id = $1"))
                .await
                .map_err(postgres::q(ctx))?;
            Ok(client.query_opt(&stmt, &[&id]).await.map_err(postgres::q(ctx))?.as_ref().map(row_pg))
        }
    }
}

/// Filters of the agency's list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub agencies: Vec<String>,
    pub state: Option<RequestState>,
    pub account_id: Option<String>,
    /// Keyset: items strictly older than (created_at, id).
    pub before: Option<(i64, String)>,
    pub limit: u32,
    pub now_secs: i64,
}

/// The agency's requests, newest first.
pub async fn list(db: &Db, f: ListFilter) -> DbResult<Vec<RequestRow>> {
    let ctx = "listing signature requests";
    // The state filter in SQL: `expired` is a pending request past its expiry.
    let (stored_state, expiry_cmp) = match f.state {
        None => (None, 0),
        Some(RequestState::Pending) => (Some("pending"), 1),
        Some(RequestState::Expired) => (Some("pending"), 2),
        Some(s) => (Some(s.as_str()), 0),
    };
    let (before_at, before_id) = f.before.clone().unwrap_or((i64::MAX, String::new()));
    let has_before = f.before.is_some();
    match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                let agencies = serde_json::to_string(&f.agencies).unwrap_or_else(|_| "[]".into());
                let sql = format!(
                    "SELECT {COLUMNS} FROM signature_requests WHERE agency_code IN (SELECT value FROM json_each(?1)) \
                     AND (?2 IS NULL OR state = ?2) AND (?3 = 0 OR (?3 = 1 AND expires_at > ?4) OR (?3 = 2 AND expires_at <= ?4)) \
                     AND (?5 IS NULL OR account_id = ?5) AND (?6 = 0 OR created_at < ?7 OR (created_at = ?7 AND id < ?8)) \
                     ORDER BY created_at DESC, id DESC LIMIT ?9"
                );
                let mut stmt = c.prepare_cached(&sql)?;
                let rows = stmt.query_map(
                    rusqlite::params![agencies, stored_state, expiry_cmp, f.now_secs, f.account_id, has_before as i64, before_at, before_id, f.limit],
                    row_sqlite,
                )?;
                rows.collect()
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let sql = format!(
                "SELECT {COLUMNS} FROM signature_requests WHERE agency_code = ANY($1) \
                 AND ($2::TEXT IS NULL OR state = $2) AND ($3 = 0 OR ($3 = 1 AND expires_at > $4) OR ($3 = 2 AND expires_at <= $4)) \
                 AND ($5::TEXT IS NULL OR account_id = $5) AND (NOT $6 OR created_at < $7 OR (created_at = $7 AND id < $8)) \
                 ORDER BY created_at DESC, id DESC LIMIT $9"
            );
            let stmt = client.prepare_cached(&sql).await.map_err(postgres::q(ctx))?;
            let limit = f.limit as i64;
            let rows = client
                .query(
                    &stmt,
                    &[&f.agencies, &stored_state, &expiry_cmp, &f.now_secs, &f.account_id, &has_before, &before_at, &before_id, &limit],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(rows.iter().map(row_pg).collect())
        }
    }
}

/// What a cancellation found.
#[derive(Debug, PartialEq)]
pub enum Cancel {
    Cancelled(RequestRow),
    /// Not pending any more (decided, cancelled before, or expired): nothing changed.
    NotPending(RequestRow),
    Missing,
}

/// Cancels a pending request of one of `agencies`: state, feed (`signature.state`) and audit.
pub async fn cancel(db: &Db, id: &str, agencies: Vec<String>, actor: &str, reason: Option<String>) -> DbResult<Cancel> {
    let ctx = "cancelling a signature request";
    let Some(current) = get(db, id).await? else { return Ok(Cancel::Missing) };
    if !agencies.contains(&current.agency_code) {
        return Ok(Cancel::Missing);
    }
    let now = now_millis();
    let change = json(&SignatureStateChange { id: id.to_string(), state: RequestState::Cancelled, at: (now / 1000) as u64, reason: reason.clone() })?;
    let detail = serde_json::json!({ "reason": reason }).to_string();
    let feed_name = account_feed(&current.account_id);
    let (id, actor) = (id.to_string(), actor.to_string());
    let updated = match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let n = tx
                    .execute(
                        "UPDATE signature_requests SET state = 'cancelled', cancelled_at = ?2, cancel_reason = ?3 \
                         WHERE id = ?1 AND state = 'pending' AND expires_at > ?4",
                        rusqlite::params![id, now, reason, now / 1000],
                    )
                    .map_err(sqlite::q(ctx))?;
                if n == 1 {
                    audit::append_sqlite(tx, &id, audit::CANCELLED, &actor, &detail, now)?;
                    feed::append_sqlite(tx, &feed_name, STATE_CHANGE, &id, &change)?;
                }
                Ok(n == 1)
            })
            .await?
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let p = |e| postgres::q(ctx)(e);
            let locked = feed::lock_pg(&tx, &feed_name).await?;
            let n = tx
                .execute(
                    "UPDATE signature_requests SET state = 'cancelled', cancelled_at = $2, cancel_reason = $3 \
                     WHERE id = $1 AND state = 'pending' AND expires_at > $4",
                    &[&id, &now, &reason, &(now / 1000)],
                )
                .await
                .map_err(p)?;
            if n == 1 {
                audit::append_pg(&tx, &id, audit::CANCELLED, &actor, &detail, now).await?;
                locked.append(STATE_CHANGE, &id, &change).await?;
            }
            tx.commit().await.map_err(p)?;
            n == 1
        }
    };
    let after = get(db, &current.id).await?.ok_or_else(|| DbError::Corrupt("a cancelled request vanished".into()))?;
    Ok(if updated { Cancel::Cancelled(after) } else { Cancel::NotPending(after) })
}

/// An accepted decision, to record.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub request_id: String,
    pub account_id: String,
    pub state: RequestState,
    pub statement: Vec<u8>,
    pub signed_sha256: Vec<u8>,
    pub key_id: Vec<u8>,
    pub decline_reason: Option<String>,
    pub audit_detail: String,
    /// The answer to give now and to every retry of the key.
    pub response: String,
    pub idempotency_key: String,
}

/// What recording found.
#[derive(Debug, PartialEq)]
pub enum Record {
    Recorded,
    /// Another decision or a cancellation got there first (the row as it now stands).
    Lost(Box<RequestRow>),
}

/// Records a decision on a still-pending request, with its feed change, audit entry and the
/// command's answer, in one transaction. The `state = 'pending'` condition makes two racing
/// decisions (two instances) end with exactly one recorded.
pub async fn record_decision(db: &Db, a: Accepted) -> DbResult<Record> {
    let ctx = "recording a signature decision";
    let now = now_millis();
    let change = json(&SignatureStateChange { id: a.request_id.clone(), state: a.state, at: (now / 1000) as u64, reason: a.decline_reason.clone() })?;
    let feed_name = account_feed(&a.account_id);
    let id = a.request_id.clone();
    let recorded = match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let n = tx
                    .execute(
                        "UPDATE signature_requests SET state = ?2, decided_at = ?3, decision = ?4, decision_signed_sha256 = ?5, \
                         decision_key_id = ?6, decision_response = ?7 WHERE id = ?1 AND state = 'pending'",
                        rusqlite::params![a.request_id, a.state.as_str(), now, a.statement, a.signed_sha256, a.key_id, a.response],
                    )
                    .map_err(sqlite::q(ctx))?;
                if n == 1 {
                    audit::append_sqlite(tx, &a.request_id, audit::DECIDED, &a.account_id, &a.audit_detail, now)?;
                    feed::append_sqlite(tx, &feed_name, STATE_CHANGE, &a.request_id, &change)?;
                    idempotency::finish_sqlite(tx, &a.account_id, &a.idempotency_key, 200, &a.response)?;
                }
                Ok(n == 1)
            })
            .await?
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let p = |e| postgres::q(ctx)(e);
            let locked = feed::lock_pg(&tx, &feed_name).await?;
            let n = tx
                .execute(
                    "UPDATE signature_requests SET state = $2, decided_at = $3, decision = $4, decision_signed_sha256 = $5, \
                     decision_key_id = $6, decision_response = $7 WHERE id = $1 AND state = 'pending'",
                    &[&a.request_id, &a.state.as_str(), &now, &a.statement, &a.signed_sha256, &a.key_id, &a.response],
                )
                .await
                .map_err(p)?;
            if n == 1 {
                audit::append_pg(&tx, &a.request_id, audit::DECIDED, &a.account_id, &a.audit_detail, now).await?;
                locked.append(STATE_CHANGE, &a.request_id, &change).await?;
                idempotency::finish_pg(&tx, &a.account_id, &a.idempotency_key, 200, &a.response).await?;
            }
            tx.commit().await.map_err(p)?;
            n == 1
        }
    };
    if recorded {
        return Ok(Record::Recorded);
    }
    let row = get(db, &id).await?.ok_or_else(|| DbError::Corrupt("a decided request vanished".into()))?;
    Ok(Record::Lost(Box::new(row)))
}

/// The account id of the resident with this national ID number, if they ever logged in.
pub async fn account_by_national_id(db: &Db, national_id: &str) -> DbResult<Option<String>> {
    let ctx = "looking up a resident";
    let nid = national_id.to_string();
    match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| c.query_row("SELECT id FROM accounts WHERE national_id = ?1", [nid], |r| r.get(0)).optional()).await
        }
        Db::Postgres(pool) => Ok(pool
            .client()
            .await?
            .query_opt("SELECT id FROM accounts WHERE national_id = $1", &[&nid])
            .await
            .map_err(postgres::q(ctx))?
            .map(|r| r.get(0))),
    }
}

/// The national ID numbers of these accounts (a page's residents), in one query.
pub async fn national_ids(db: &Db, account_ids: Vec<String>) -> DbResult<std::collections::HashMap<String, String>> {
    let ctx = "reading residents' national ID numbers";
    match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                let ids = serde_json::to_string(&account_ids).unwrap_or_else(|_| "[]".into());
                let mut stmt = c.prepare_cached("SELECT id, national_id FROM accounts WHERE id IN (SELECT value FROM json_each(?1))")?;
                let rows = stmt.query_map([ids], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let stmt = client.prepare_cached("SELECT id, national_id FROM accounts WHERE id = ANY($1)").await.map_err(postgres::q(ctx))?;
            let rows = client.query(&stmt, &[&account_ids]).await.map_err(postgres::q(ctx))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        }
    }
}

/// How many open (pending, unexpired) requests a resident has: creation is capped on it.
pub async fn open_for_resident(db: &Db, account_id: &str, now_secs: i64) -> DbResult<i64> {
    let ctx = "counting a resident's open signature requests";
    let account = account_id.to_string();
    match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM signature_requests WHERE account_id = ?1 AND state = 'pending' AND expires_at > ?2",
                    rusqlite::params![account, now_secs],
                    |r| r.get(0),
                )
            })
            .await
        }
        Db::Postgres(pool) => Ok(pool
            .client()
            .await?
            .query_one(
                "SELECT COUNT(*) FROM signature_requests WHERE account_id = $1 AND state = 'pending' AND expires_at > $2",
                &[&account, &now_secs],
            )
            .await
            .map_err(postgres::q(ctx))?
            .get(0)),
    }
}
