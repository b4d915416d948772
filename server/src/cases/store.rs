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
    /// The idempotency key whose answer is recorded with the case.
    pub key: String,
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
                let counter = format!("case:{year}");
                tx.execute("INSERT INTO counters(name, value) VALUES (?1, 0) ON CONFLICT(name) DO NOTHING", [&counter])
                    .map_err(sqlite::q(ctx))?;
                let seq: i64 = tx
                    .query_row("UPDATE counters SET value = value + 1 WHERE name = ?1 RETURNING value", [&counter], |r| {
                        r.get(0)
                    })
                    .map_err(sqlite::q(ctx))?;
                let receipt = receipt(&case, case_number(year, seq));
                tx.execute(
                    "INSERT INTO cases(id, number, account_id, procedure_code, agency_code, draft_id, field_values, status, \
                         received_at, due_date, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'received', ?8, ?9, ?8)",
                    rusqlite::params![
                        case.id, receipt.case_number, case.account_id, case.procedure_code, case.agency_code,
                        case.draft_id, case.values_json, case.received_at_ms, case.due_date
                    ],
                )
                .map_err(sqlite::q(ctx))?;
                tx.execute(
                    "INSERT INTO case_events(case_id, at, status, message) VALUES (?1, ?2, 'received', NULL)",
                    rusqlite::params![case.id, case.received_at_ms],
                )
                .map_err(sqlite::q(ctx))?;
                let view = status_view(&receipt, &case.procedure_code, &case.draft_id).to_string();
                feed::append_sqlite(tx, &account_feed(&case.account_id), STATUS_CHANGE, &case.id, &view)?;
                let body = serde_json::to_string(&receipt).map_err(|e| crate::db::DbError::Corrupt(e.to_string()))?;
                idempotency::finish_sqlite(tx, &case.account_id, &case.key, 201, &body)?;
                Ok(receipt)
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let feed_name = account_feed(&case.account_id);
            // The feed head first, then the rows (the lock order every feed writer keeps).
            let locked = feed::lock_pg(&tx, &feed_name).await?;
            // A database sequence: unique across instances without serialising them.
            let seq: i64 = tx.query_one("SELECT nextval('case_number_seq')", &[]).await.map_err(postgres::q(ctx))?.get(0);
            let receipt = receipt(&case, case_number(year, seq));
            tx.execute(
                "INSERT INTO cases(id, number, account_id, procedure_code, agency_code, draft_id, field_values, status, \
                     received_at, due_date, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'received', $8, $9, $8)",
                &[
                    &case.id, &receipt.case_number, &case.account_id, &case.procedure_code, &case.agency_code,
                    &case.draft_id, &case.values_json, &case.received_at_ms, &case.due_date,
                ],
            )
            .await
            .map_err(postgres::q(ctx))?;
            tx.execute(
                "INSERT INTO case_events(case_id, at, status, message) VALUES ($1, $2, 'received', NULL)",
                &[&case.id, &case.received_at_ms],
            )
            .await
            .map_err(postgres::q(ctx))?;
            let view = status_view(&receipt, &case.procedure_code, &case.draft_id).to_string();
            locked.append(STATUS_CHANGE, &case.id, &view).await?;
            let body = serde_json::to_string(&receipt).map_err(|e| crate::db::DbError::Corrupt(e.to_string()))?;
            idempotency::finish_pg(&tx, &case.account_id, &case.key, 201, &body).await?;
            tx.commit().await.map_err(postgres::q(ctx))?;
            Ok(receipt)
        }
    }
}

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
