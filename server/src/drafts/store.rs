//! Backed-up drafts for both databases: the stored draft merged with an incoming one per field
//! (`congdan_core::drafts::backup::merge`), written back, one `draft.upsert` change on the
//! resident's account feed and the recorded answer of the idempotency key, in one transaction.

use congdan_core::drafts::backup::{merge, BackupField, DraftBackup, UPSERT_CHANGE};
use congdan_core::drafts::hlc::Hlc;

use crate::cases::idempotency;
use crate::db::{now_millis, postgres, sqlite, Db, DbError, DbResult};
use crate::feed;
use crate::identity::store::account_feed;

/// What a backup did.
#[derive(Debug)]
pub enum Outcome {
    /// The merged draft, also recorded as the key's answer (`200`, this JSON).
    Merged(DraftBackup, String),
    /// The draft id belongs to another account.
    NotYours,
    /// Merged, the draft would have more fields than allowed.
    TooManyFields,
}

fn stamp_text(h: &Option<Hlc>) -> String {
    h.as_ref().map(Hlc::to_string).unwrap_or_default()
}

fn parse_stamp(s: &str) -> Option<Hlc> {
    s.parse().ok()
}

fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(e.to_string())
}

/// The stored draft's row: (account, procedure, title, title_hlc, deleted, deleted_hlc).
type DraftRow = (String, String, String, String, bool, String);

fn assemble(id: &str, row: DraftRow, fields: Vec<(String, Option<String>, String)>) -> DbResult<DraftBackup> {
    let (_, procedure_code, title, title_hlc, deleted, deleted_hlc) = row;
    let fields = fields
        .into_iter()
        .map(|(field_id, value, hlc)| {
            Ok(BackupField {
                field_id,
                value: value.map(|v| serde_json::from_str(&v)).transpose().map_err(corrupt)?,
                hlc: hlc.parse().map_err(corrupt)?,
            })
        })
        .collect::<DbResult<Vec<_>>>()?;
    Ok(DraftBackup {
        draft_id: id.to_string(),
        procedure_code,
        title,
        title_hlc: parse_stamp(&title_hlc),
        deleted,
        deleted_hlc: parse_stamp(&deleted_hlc),
        fields,
    })
}

/// Merges `incoming` into the caller's stored draft (creating it on first backup).
pub async fn merge_backup(db: &Db, account: &str, key: &str, incoming: DraftBackup) -> DbResult<Outcome> {
    let ctx = "merging a draft backup";
    let now = now_millis();
    match db {
        Db::Sqlite(pool) => {
            let (account, key) = (account.to_string(), key.to_string());
            pool.write(ctx, move |tx| {
                let id = incoming.draft_id.clone();
                let row: Option<DraftRow> = tx
                    .query_row(
                        "SELECT account_id, procedure_code, title, title_hlc, deleted, deleted_hlc FROM server_drafts \
                         WHERE draft_id = ?1",
                        [&id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                    )
                    .map(Some)
                    .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
                    .map_err(sqlite::q(ctx))?;
                let stored = match row {
                    Some(row) if row.0 != account => return Ok(Outcome::NotYours),
                    Some(row) => {
                        let mut stmt = tx
                            .prepare_cached("SELECT field_id, value, hlc FROM server_draft_fields WHERE draft_id = ?1")
                            .map_err(sqlite::q(ctx))?;
                        let fields = stmt
                            .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                            .map_err(sqlite::q(ctx))?;
                        assemble(&id, row, fields)?
                    }
                    None => incoming.clone(),
                };
                let merged = merge(&stored, &incoming);
                if merged.fields.len() > congdan_core::drafts::backup::MAX_FIELDS {
                    return Ok(Outcome::TooManyFields);
                }
                tx.execute(
                    "INSERT INTO server_drafts(draft_id, account_id, procedure_code, title, title_hlc, deleted, deleted_hlc, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(draft_id) DO UPDATE SET title = excluded.title, \
                     title_hlc = excluded.title_hlc, deleted = excluded.deleted, deleted_hlc = excluded.deleted_hlc, \
                     updated_at = excluded.updated_at",
                    rusqlite::params![
                        id, account, merged.procedure_code, merged.title, stamp_text(&merged.title_hlc), merged.deleted,
                        stamp_text(&merged.deleted_hlc), now
                    ],
                )
                .map_err(sqlite::q(ctx))?;
                {
                    let mut upsert = tx
                        .prepare_cached(
                            "INSERT INTO server_draft_fields(draft_id, field_id, value, hlc) VALUES (?1, ?2, ?3, ?4) \
                             ON CONFLICT(draft_id, field_id) DO UPDATE SET value = excluded.value, hlc = excluded.hlc",
                        )
                        .map_err(sqlite::q(ctx))?;
                    for f in &merged.fields {
                        let value = f.value.as_ref().map(|v| v.to_string());
                        upsert.execute(rusqlite::params![id, f.field_id, value, f.hlc.to_string()]).map_err(sqlite::q(ctx))?;
                    }
                }
                let body = serde_json::to_string(&merged).map_err(corrupt)?;
                feed::append_sqlite(tx, &account_feed(&account), UPSERT_CHANGE, &id, &body)?;
                idempotency::finish_sqlite(tx, &account, &key, 200, &body)?;
                Ok(Outcome::Merged(merged, body))
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let feed_name = account_feed(account);
            // The feed head first, then the rows (the lock order every feed writer keeps).
            let locked = feed::lock_pg(&tx, &feed_name).await?;
            let id = incoming.draft_id.clone();
            let row = tx
                .query_opt(
                    "SELECT account_id, procedure_code, title, title_hlc, deleted, deleted_hlc FROM server_drafts \
                     WHERE draft_id = $1 FOR UPDATE",
                    &[&id],
                )
                .await
                .map_err(postgres::q(ctx))?;
            let stored = match row {
                Some(r) => {
                    let row: DraftRow = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
                    if row.0 != account {
                        return Ok(Outcome::NotYours);
                    }
                    let fields = tx
                        .query("SELECT field_id, value, hlc FROM server_draft_fields WHERE draft_id = $1", &[&id])
                        .await
                        .map_err(postgres::q(ctx))?
                        .into_iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect();
                    assemble(&id, row, fields)?
                }
                None => incoming.clone(),
            };
            let merged = merge(&stored, &incoming);
            if merged.fields.len() > congdan_core::drafts::backup::MAX_FIELDS {
                return Ok(Outcome::TooManyFields);
            }
            tx.execute(
                "INSERT INTO server_drafts(draft_id, account_id, procedure_code, title, title_hlc, deleted, deleted_hlc, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (draft_id) DO UPDATE SET title = excluded.title, \
                 title_hlc = excluded.title_hlc, deleted = excluded.deleted, deleted_hlc = excluded.deleted_hlc, \
                 updated_at = excluded.updated_at",
                &[
                    &id, &account, &merged.procedure_code, &merged.title, &stamp_text(&merged.title_hlc), &merged.deleted,
                    &stamp_text(&merged.deleted_hlc), &now,
                ],
            )
            .await
            .map_err(postgres::q(ctx))?;
            let upsert = tx
                .prepare(
                    "INSERT INTO server_draft_fields(draft_id, field_id, value, hlc) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (draft_id, field_id) DO UPDATE SET value = excluded.value, hlc = excluded.hlc",
                )
                .await
                .map_err(postgres::q(ctx))?;
            for f in &merged.fields {
                let value = f.value.as_ref().map(|v| v.to_string());
                tx.execute(&upsert, &[&id, &f.field_id, &value, &f.hlc.to_string()]).await.map_err(postgres::q(ctx))?;
            }
            let body = serde_json::to_string(&merged).map_err(corrupt)?;
            locked.append(UPSERT_CHANGE, &id, &body).await?;
            idempotency::finish_pg(&tx, account, key, 200, &body).await?;
            tx.commit().await.map_err(postgres::q(ctx))?;
            Ok(Outcome::Merged(merged, body))
        }
    }
}
