//! Cases for both databases: a submission becomes a case with a human-readable number, its first
//! timeline event, a `case.status` change on the resident's account feed, and the recorded
//! answer of its idempotency key, all in one transaction.

use congdan_core::drafts::wire::CaseReceipt;

use super::idempotency;
use crate::db::{now_millis, postgres, sqlite, Db, DbResult};
use crate::feed;
use crate::identity::store::account_feed;

/// The change kind that tells the phone where its case stands.
pub const STATUS_CHANGE: &str = "case.status";

/// A new case, decided and ready to be written.
pub struct NewCase {
    pub id: String,
    pub account_id: String,
    pub procedure_code: String,
    pub agency_code: String,
    pub draft_id: String,
    pub values_json: String,
    pub received_at_ms: i64,
    pub due_date: String,
    /// An anonymous hotline report: agency views never show who sent it.
    pub anonymous: bool,
    /// The idempotency key whose answer is recorded with the case.
    pub key: String,
    /// Rule id -> SHA-256 of each file (checked: complete uploads of the resident).
    pub attachments: std::collections::BTreeMap<String, Vec<String>>,
}

/// The case as the resident's phone sees it (the `case.status` change's data).
pub fn status_view(receipt: &CaseReceipt, procedure_code: &str, draft_id: &str) -> serde_json::Value {
    serde_json::json!({
        "case_id": receipt.case_id,
        "case_number": receipt.case_number,
        "procedure_code": procedure_code,
        "draft_id": draft_id,
        "status": receipt.status,
        "received_at_ms": receipt.received_at_ms,
        "due_date": receipt.due_date,
        "timeline": [{"status": receipt.status, "at_ms": receipt.received_at_ms}],
    })
}

fn case_number(year: i32, seq: i64) -> String {
    format!("HCM-{year}-{seq:06}")
}

/// Writes the case and records `201` + the receipt as the key's answer. Returns the receipt.
pub async fn create(db: &Db, case: NewCase, year: i32) -> DbResult<CaseReceipt> {
    let ctx = "creating a case";
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                // Statements cached on the connection: parsed once, not per submission.
                let counter = format!("case:{year}");
                let seq: i64 = tx
                    .prepare_cached(
                        "INSERT INTO counters(name, value) VALUES (?1, 1) \
                         ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
                    )
                    .and_then(|mut s| s.query_row([&counter], |r| r.get(0)))
                    .map_err(sqlite::q(ctx))?;
                let receipt = receipt(&case, case_number(year, seq));
                tx.prepare_cached(
                    "INSERT INTO cases(id, number, account_id, procedure_code, agency_code, draft_id, field_values, status, \
                         received_at, due_date, updated_at, anonymous) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'received', ?8, ?9, ?8, ?10)",
                )
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        case.id, receipt.case_number, case.account_id, case.procedure_code, case.agency_code,
                        case.draft_id, case.values_json, case.received_at_ms, case.due_date, case.anonymous
                    ])
                })
                .map_err(sqlite::q(ctx))?;
                tx.prepare_cached("INSERT INTO case_events(case_id, at, status, message) VALUES (?1, ?2, 'received', NULL)")
                    .and_then(|mut s| s.execute(rusqlite::params![case.id, case.received_at_ms]))
                    .map_err(sqlite::q(ctx))?;
                crate::blobs::store::attach_to_case_sqlite(tx, &case.id, &case.attachments)?;
                let view = status_view(&receipt, &case.procedure_code, &case.draft_id).to_string();
                feed::append_sqlite(tx, &account_feed(&case.account_id), STATUS_CHANGE, &case.id, &view)?;
                let body = serde_json::to_string(&receipt).map_err(|e| crate::db::DbError::Corrupt(e.to_string()))?;
                idempotency::finish_sqlite(tx, &case.account_id, &case.key, 201, &body)?;
                Ok(receipt)
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            // The number comes from the statement (a database sequence: unique across instances
            // without serialising them), so the change's data and the recorded answer are
            // written with a slot where it goes, filled in by the statement (see NUMBER_SLOT).
            let slotted = receipt(&case, NUMBER_SLOT.to_string());
            let view = status_view(&slotted, &case.procedure_code, &case.draft_id).to_string();
            let body = serde_json::to_string(&slotted).map_err(|e| crate::db::DbError::Corrupt(e.to_string()))?;
            let slot = format!("\"case_number\":\"{NUMBER_SLOT}\"");
            let (rules, hashes): (Vec<&String>, Vec<&String>) =
                case.attachments.iter().flat_map(|(rule, shas)| shas.iter().map(move |sha| (rule, sha))).unzip();
            // One statement: one round trip and one implicit transaction, all or nothing.
            let create = client.prepare_cached(CREATE_CASE_PG).await.map_err(postgres::q(ctx))?;
            let row = client
                .query_one(
                    &create,
                    &[
                        &account_feed(&case.account_id), &case.id, &year.to_string(), &case.account_id,
                        &case.procedure_code, &case.agency_code, &case.draft_id, &case.values_json,
                        &case.received_at_ms, &case.due_date, &case.anonymous, &rules, &hashes, &STATUS_CHANGE,
                        &view, &now_millis(), &case.key, &body, &slot,
                    ],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(receipt(&case, row.get(0)))
        }
    }
}

/// Stands for the case number in the JSON written before the number exists. Only the exact
/// bytes `"case_number":"#"` are replaced: a `"` inside any value is escaped (`\"`), so no
/// value can contain them; the result is byte for byte what serde writes with the number.
const NUMBER_SLOT: &str = "#";

/// The whole of [`create`] for PostgreSQL. Besides the feed head (bumped, its row lock held to
/// the end, as feed.rs wants of every feed writer) the only existing row it locks is its own
/// key's, which no other feed writer takes, so it cannot deadlock with them. In it: the
/// case number from the sequence, the feed head, the case,
/// its first event, its files, the `case.status` change at the new head, and the key's recorded
/// answer. Parameters: $1 feed, $2 case id, $3 year, $4 account, $5 procedure, $6 agency, $7
/// draft, $8 values, $9 received at, $10 due date, $11 anonymous, $12/$13 the files' rule ids
/// and hashes, $14 change kind, $15 change data and $18 the answer (both with the slot $19),
/// $16 now, $17 idempotency key. Answers the case number.
const CREATE_CASE_PG: &str = "\
    WITH num AS ( \
        SELECT 'HCM-' || $3::text || '-' || lpad(n::text, greatest(6, length(n::text)), '0') AS number \
        FROM nextval('case_number_seq') AS n), \
    head AS ( \
        INSERT INTO feed_heads(feed, head) VALUES ($1, 1) \
        ON CONFLICT (feed) DO UPDATE SET head = feed_heads.head + 1 RETURNING head), \
    new_case AS ( \
        INSERT INTO cases(id, number, account_id, procedure_code, agency_code, draft_id, field_values, status, \
            received_at, due_date, updated_at, anonymous) \
        SELECT $2, num.number, $4, $5, $6, $7, $8, 'received', $9, $10, $9, $11 FROM num RETURNING id, number), \
    first_event AS ( \
        INSERT INTO case_events(case_id, at, status, message) SELECT id, $9, 'received', NULL FROM new_case), \
    files AS ( \
        INSERT INTO case_attachments(case_id, rule_id, sha256) \
        SELECT new_case.id, f.rule_id, f.sha256 FROM new_case, unnest($12::text[], $13::text[]) AS f(rule_id, sha256) \
        ON CONFLICT DO NOTHING), \
    change AS ( \
        INSERT INTO changes(feed, seq, kind, key, data, created_at) \
        SELECT $1, head.head, $14, $2, replace($15, $19::text, '\"case_number\":\"' || num.number || '\"'), $16 FROM head, num), \
    answer AS ( \
        UPDATE idempotency_keys SET status = 201, locked_until = 0, \
            response = (SELECT replace($18, $19::text, '\"case_number\":\"' || num.number || '\"') FROM num) \
        WHERE account_id = $4 AND key = $17) \
    SELECT number FROM new_case";


fn receipt(case: &NewCase, case_number: String) -> CaseReceipt {
    CaseReceipt {
        case_id: case.id.clone(),
        case_number,
        status: "received".into(),
        received_at_ms: case.received_at_ms,
        due_date: case.due_date.clone(),
    }
}

/// Records a refusal (status and body) as the key's answer, so a retry is refused the same way.
pub async fn record_refusal(db: &Db, account: &str, key: &str, status: u16, body: &str) -> DbResult<()> {
    let ctx = "recording a refused submission";
    match db {
        Db::Sqlite(pool) => {
            let (account, key, body) = (account.to_string(), key.to_string(), body.to_string());
            pool.write(ctx, move |tx| idempotency::finish_sqlite(tx, &account, &key, status, &body)).await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            idempotency::finish_pg(&tx, account, key, status, body).await?;
            tx.commit().await.map_err(postgres::q(ctx))
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    now_millis()
}

// ---- The life of a case after it is received: agency steps, the resident's answer, reads. ----

/// The statuses of a case. `done` and `rejected` are final.
pub const STATUSES: &[&str] = &["received", "processing", "needs_information", "information_provided", "done", "rejected"];

/// A case row as the agency and the status commands need it.
#[derive(Clone, Debug)]
pub struct CaseRecord {
    pub id: String,
    pub number: String,
    pub account_id: String,
    pub procedure_code: String,
    pub agency_code: String,
    pub draft_id: String,
    pub values_json: String,
    pub status: String,
    pub received_at_ms: i64,
    pub due_date: String,
    pub anonymous: bool,
    pub requested_fields: Vec<String>,
    pub result_document: Option<String>,
}

/// One step of a case's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseEvent {
    pub status: String,
    pub at_ms: i64,
    pub message: Option<String>,
}

/// What a status command writes: the new status, its event, and what the case now asks for.
#[derive(Clone, Debug, Default)]
pub struct Step {
    pub status: String,
    pub message: Option<String>,
    /// The fields the agency asks for (empty clears the request).
    pub requested_fields: Vec<String>,
    pub result_document: Option<String>,
    /// New field values (the resident's answer), JSON; `None` keeps the stored ones.
    pub values_json: Option<String>,
}

/// The decision a command takes on the case as it is inside the transaction.
pub enum Decision {
    Apply(Step),
    /// Refused: this status and body are the key's recorded answer.
    Refuse { status: u16, body: String },
}

const CASE_COLUMNS: &str = "id, number, account_id, procedure_code, agency_code, draft_id, field_values, status, \
     received_at, due_date, anonymous, requested_fields, result_document";

fn requested_from_json(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

fn requested_to_json(fields: &[String]) -> Option<String> {
    (!fields.is_empty()).then(|| serde_json::to_string(fields).unwrap_or_default())
}

fn record_sqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRecord> {
    Ok(CaseRecord {
        id: r.get(0)?,
        number: r.get(1)?,
        account_id: r.get(2)?,
        procedure_code: r.get(3)?,
        agency_code: r.get(4)?,
        draft_id: r.get(5)?,
        values_json: r.get(6)?,
        status: r.get(7)?,
        received_at_ms: r.get(8)?,
        due_date: r.get(9)?,
        anonymous: r.get::<_, i64>(10)? != 0,
        requested_fields: requested_from_json(r.get(11)?),
        result_document: r.get(12)?,
    })
}

fn record_pg(r: &tokio_postgres::Row) -> CaseRecord {
    CaseRecord {
        id: r.get(0),
        number: r.get(1),
        account_id: r.get(2),
        procedure_code: r.get(3),
        agency_code: r.get(4),
        draft_id: r.get(5),
        values_json: r.get(6),
        status: r.get(7),
        received_at_ms: r.get(8),
        due_date: r.get(9),
        anonymous: r.get(10),
        requested_fields: requested_from_json(r.get(11)),
        result_document: r.get(12),
    }
}

fn case_sqlite(c: &rusqlite::Connection, id: &str) -> rusqlite::Result<Option<CaseRecord>> {
    use rusqlite::OptionalExtension;
    c.query_row(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1"), [id], record_sqlite).optional()
}

fn events_sqlite(c: &rusqlite::Connection, id: &str) -> rusqlite::Result<Vec<CaseEvent>> {
    let mut stmt = c.prepare_cached("SELECT status, at, message FROM case_events WHERE case_id = ?1 ORDER BY at")?;
    let rows = stmt.query_map([id], |r| Ok(CaseEvent { status: r.get(0)?, at_ms: r.get(1)?, message: r.get(2)? }))?;
    rows.collect()
}

async fn events_pg(client: &impl deadpool_postgres::GenericClient, id: &str) -> DbResult<Vec<CaseEvent>> {
    let rows = client
        .query("SELECT status, at, message FROM case_events WHERE case_id = $1 ORDER BY at", &[&id])
        .await
        .map_err(postgres::q("reading a case's timeline"))?;
    Ok(rows.into_iter().map(|r| CaseEvent { status: r.get(0), at_ms: r.get(1), message: r.get(2) }).collect())
}

/// A case and its timeline (no authorisation here: the caller checks who may see it).
/// The case a resident's draft already became, if any: one draft makes one case, whichever of
/// the resident's devices submits it (the other device's copy may not know yet).
pub async fn case_for_draft(db: &Db, account: &str, draft_id: &str) -> DbResult<Option<CaseReceipt>> {
    let ctx = "finding a draft's case";
    let found: Option<String> = match db {
        Db::Sqlite(pool) => {
            let (account, draft_id) = (account.to_string(), draft_id.to_string());
            pool.read(ctx, move |c| {
                use rusqlite::OptionalExtension;
                c.query_row("SELECT id FROM cases WHERE account_id = ?1 AND draft_id = ?2", [account, draft_id], |r| r.get(0))
                    .optional()
            })
            .await?
        }
        Db::Postgres(pool) => pool
            .client()
            .await?
            .query_opt("SELECT id FROM cases WHERE account_id = $1 AND draft_id = $2", &[&account, &draft_id])
            .await
            .map_err(postgres::q(ctx))?
            .map(|r| r.get(0)),
    };
    let Some(id) = found else { return Ok(None) };
    Ok(get_case(db, &id).await?.map(|(case, _)| CaseReceipt {
        case_id: case.id,
        case_number: case.number,
        status: case.status,
        received_at_ms: case.received_at_ms,
        due_date: case.due_date,
    }))
}

pub async fn get_case(db: &Db, id: &str) -> DbResult<Option<(CaseRecord, Vec<CaseEvent>)>> {
    let ctx = "reading a case";
    let id = id.to_string();
    match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                let Some(case) = case_sqlite(c, &id)? else { return Ok(None) };
                let events = events_sqlite(c, &id)?;
                Ok(Some((case, events)))
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let row = client
                .query_opt(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1"), &[&id])
                .await
                .map_err(postgres::q(ctx))?;
            let Some(row) = row else { return Ok(None) };
            let events = events_pg(&client, &id).await?;
            Ok(Some((record_pg(&row), events)))
        }
    }
}

/// The case as the resident's phone sees it after any step: the `case.status` change's data,
/// with the whole timeline (messages included) and what the agency asks for or sent back.
pub fn full_view(case: &CaseRecord, events: &[CaseEvent]) -> serde_json::Value {
    let timeline: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            let mut entry = serde_json::json!({"status": e.status, "at_ms": e.at_ms});
            if let Some(m) = &e.message {
                entry["message"] = serde_json::json!(m);
            }
            entry
        })
        .collect();
    let mut view = serde_json::json!({
        "case_id": case.id,
        "case_number": case.number,
        "procedure_code": case.procedure_code,
        "draft_id": case.draft_id,
        "status": case.status,
        "received_at_ms": case.received_at_ms,
        "due_date": case.due_date,
        "timeline": timeline,
    });
    if !case.requested_fields.is_empty() {
        view["requested_fields"] = serde_json::json!(case.requested_fields);
    }
    if let Some(doc) = &case.result_document {
        view["result_document"] = serde_json::json!(doc);
    }
    view
}

fn applied(mut case: CaseRecord, step: &Step) -> CaseRecord {
    case.status = step.status.clone();
    case.requested_fields = step.requested_fields.clone();
    if step.result_document.is_some() {
        case.result_document = step.result_document.clone();
    }
    if let Some(values) = &step.values_json {
        case.values_json = values.clone();
    }
    case
}

/// Runs one status command on a case in ONE transaction: `decide` sees the case as it is now
/// (locked on PostgreSQL, the writer lock on SQLite) and either refuses or gives the step; the
/// step writes the case row, its event, the `case.status` change on the owner's feed and the
/// key's `200` answer (the full view). A refusal is recorded under the key too. Returns the
/// recorded (status, body).
pub async fn run_step(
    db: &Db,
    case_id: &str,
    caller: &str,
    key: &str,
    decide: impl FnOnce(Option<&CaseRecord>) -> Decision + Send + 'static,
) -> DbResult<(u16, String)> {
    let ctx = "changing a case's status";
    match db {
        Db::Sqlite(pool) => {
            let (case_id, caller, key) = (case_id.to_string(), caller.to_string(), key.to_string());
            pool.write(ctx, move |tx| {
                let case = case_sqlite(tx, &case_id).map_err(sqlite::q(ctx))?;
                let (status, body) = match (decide(case.as_ref()), case) {
                    (Decision::Apply(step), Some(case)) => {
                        let at = step_time(events_sqlite(tx, &case_id).map_err(sqlite::q(ctx))?.last());
                        let case = applied(case, &step);
                        tx.execute(
                            "UPDATE cases SET status = ?2, requested_fields = ?3, result_document = ?4, \
                                 field_values = ?5, updated_at = ?6 WHERE id = ?1",
                            rusqlite::params![
                                case.id, case.status, requested_to_json(&case.requested_fields),
                                case.result_document, case.values_json, at
                            ],
                        )
                        .map_err(sqlite::q(ctx))?;
                        tx.execute(
                            "INSERT INTO case_events(case_id, at, status, message) VALUES (?1, ?2, ?3, ?4)",
                            rusqlite::params![case.id, at, case.status, step.message],
                        )
                        .map_err(sqlite::q(ctx))?;
                        let events = events_sqlite(tx, &case.id).map_err(sqlite::q(ctx))?;
                        let view = full_view(&case, &events).to_string();
                        feed::append_sqlite(tx, &account_feed(&case.account_id), STATUS_CHANGE, &case.id, &view)?;
                        (200, view)
                    }
                    (Decision::Refuse { status, body }, _) => (status, body),
                    (Decision::Apply(_), None) => return Err(crate::db::DbError::Corrupt("a step on no case".into())),
                };
                idempotency::finish_sqlite(tx, &caller, &key, status, &body)?;
                Ok((status, body))
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            // The owner never changes: read it first, so the feed head can be locked before the
            // case row (the lock order every feed writer keeps).
            let owner: Option<String> = client
                .query_opt("SELECT account_id FROM cases WHERE id = $1", &[&case_id])
                .await
                .map_err(postgres::q(ctx))?
                .map(|r| r.get(0));
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let feed_name = owner.as_deref().map(account_feed);
            let locked = match &feed_name {
                Some(name) => Some(feed::lock_pg(&tx, name).await?),
                None => None,
            };
            let case = tx
                .query_opt(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1 FOR UPDATE"), &[&case_id])
                .await
                .map_err(postgres::q(ctx))?
                .map(|r| record_pg(&r));
            let (status, body) = match (decide(case.as_ref()), case, locked) {
                (Decision::Apply(step), Some(case), Some(locked)) => {
                    let at = step_time(events_pg(&tx, case_id).await?.last());
                    let case = applied(case, &step);
                    tx.execute(
                        "UPDATE cases SET status = $2, requested_fields = $3, result_document = $4, \
                             field_values = $5, updated_at = $6 WHERE id = $1",
                        &[
                            &case.id, &case.status, &requested_to_json(&case.requested_fields),
                            &case.result_document, &case.values_json, &at,
                        ],
                    )
                    .await
                    .map_err(postgres::q(ctx))?;
                    tx.execute(
                        "INSERT INTO case_events(case_id, at, status, message) VALUES ($1, $2, $3, $4)",
                        &[&case.id, &at, &case.status, &step.message],
                    )
                    .await
                    .map_err(postgres::q(ctx))?;
                    let events = events_pg(&tx, &case.id).await?;
                    let view = full_view(&case, &events).to_string();
                    locked.append(STATUS_CHANGE, &case.id, &view).await?;
                    (200, view)
                }
                (Decision::Refuse { status, body }, _, _) => (status, body),
                (Decision::Apply(_), _, _) => return Err(crate::db::DbError::Corrupt("a step on no case".into())),
            };
            idempotency::finish_pg(&tx, caller, key, status, &body).await?;
            tx.commit().await.map_err(postgres::q(ctx))?;
            Ok((status, body))
        }
    }
}

/// A step's time: now, but always after the last event, so the timeline's order is its time.
fn step_time(last: Option<&CaseEvent>) -> i64 {
    let now = now_millis();
    last.map_or(now, |e| now.max(e.at_ms + 1))
}

/// One row of an agency's list.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaseListItem {
    pub case_id: String,
    pub case_number: String,
    pub procedure_code: String,
    pub status: String,
    pub received_at_ms: i64,
    pub due_date: String,
}

/// What an agency asks its list for.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub agencies: Vec<String>,
    pub status: Option<String>,
    pub procedure: Option<String>,
    /// Keyset: only cases strictly older than this `(received_at, id)`.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// The agencies' cases, newest first (`received_at`, then `id`, both descending).
pub async fn list_for_agencies(db: &Db, q: ListQuery) -> DbResult<Vec<CaseListItem>> {
    let ctx = "listing an agency's cases";
    let (before_at, before_id) = q.before.clone().map_or((None, None), |(at, id)| (Some(at), Some(id)));
    match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                let agencies = serde_json::to_string(&q.agencies).unwrap_or_else(|_| "[]".into());
                let mut stmt = c.prepare_cached(
                    "SELECT id, number, procedure_code, status, received_at, due_date FROM cases \
                     WHERE agency_code IN (SELECT value FROM json_each(?1)) \
                       AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR procedure_code = ?3) \
                       AND (?4 IS NULL OR received_at < ?4 OR (received_at = ?4 AND id < ?5)) \
                     ORDER BY received_at DESC, id DESC LIMIT ?6",
                )?;
                let rows = stmt.query_map(
                    rusqlite::params![agencies, q.status, q.procedure, before_at, before_id, q.limit as i64],
                    |r| {
                        Ok(CaseListItem {
                            case_id: r.get(0)?,
                            case_number: r.get(1)?,
                            procedure_code: r.get(2)?,
                            status: r.get(3)?,
                            received_at_ms: r.get(4)?,
                            due_date: r.get(5)?,
                        })
                    },
                )?;
                rows.collect()
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let rows = client
                .query(
                    "SELECT id, number, procedure_code, status, received_at, due_date FROM cases \
                     WHERE agency_code = ANY($1) \
                       AND ($2::TEXT IS NULL OR status = $2) AND ($3::TEXT IS NULL OR procedure_code = $3) \
                       AND ($4::BIGINT IS NULL OR (received_at, id) < ($4, $5::TEXT)) \
                     ORDER BY received_at DESC, id DESC LIMIT $6",
                    &[&q.agencies, &q.status, &q.procedure, &before_at, &before_id, &(q.limit as i64)],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(rows
                .into_iter()
                .map(|r| CaseListItem {
                    case_id: r.get(0),
                    case_number: r.get(1),
                    procedure_code: r.get(2),
                    status: r.get(3),
                    received_at_ms: r.get(4),
                    due_date: r.get(5),
                })
                .collect())
        }
    }
}
