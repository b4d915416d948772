//! Catalog storage for both databases. Publishing a procedure whose text did not change writes
//! nothing, so re-importing the same file does not wake every phone.

use congdan_core::catalog::changes::{UPSERT, WITHDRAW};
use congdan_core::catalog::Procedure;

use crate::db::{now_millis, postgres, sqlite, Db, DbError, DbResult};
use crate::feed::{self, PUBLIC};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub changed: u32,
    pub unchanged: u32,
}

fn encode(p: &Procedure) -> String {
    serde_json::to_string(p).expect("procedures serialise")
}

fn decode(body: &str) -> DbResult<Procedure> {
    serde_json::from_str(body).map_err(|e| DbError::Corrupt(format!("stored procedure: {e}")))
}

/// Publishes every procedure in one transaction: all of them appear on the feed, or none.
pub async fn publish(db: &Db, procedures: Vec<Procedure>) -> DbResult<PublishReport> {
    let ctx = "publishing procedures";
    let bodies: Vec<(String, String)> = procedures.iter().map(|p| (p.code.clone(), encode(p))).collect();
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let mut report = PublishReport::default();
                for (code, body) in &bodies {
                    let changed = tx
                        .execute(
                            "INSERT INTO procedures(code, body, withdrawn, updated_at) VALUES (?1, ?2, 0, ?3) \
                             ON CONFLICT(code) DO UPDATE SET body = excluded.body, withdrawn = 0, \
                             updated_at = excluded.updated_at \
                             WHERE procedures.body <> excluded.body OR procedures.withdrawn <> 0",
                            rusqlite::params![code, body, now_millis()],
                        )
                        .map_err(sqlite::q(ctx))?;
                    if changed > 0 {
                        feed::append_sqlite(tx, PUBLIC, UPSERT, code, body)?;
                        report.changed += 1;
                    } else {
                        report.unchanged += 1;
                    }
                }
                Ok(report)
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let public = feed::lock_pg(&tx, PUBLIC).await?;
            let mut report = PublishReport::default();
            for (code, body) in &bodies {
                let (code, body): (&str, &str) = (code, body);
                let changed = tx
                    .execute(
                        "INSERT INTO procedures(code, body, withdrawn, updated_at) VALUES ($1, $2, FALSE, $3) \
                         ON CONFLICT (code) DO UPDATE SET body = excluded.body, withdrawn = FALSE, \
                         updated_at = excluded.updated_at \
                         WHERE procedures.body <> excluded.body OR procedures.withdrawn",
                        &[&code, &body, &now_millis()],
                    )
                    .await
                    .map_err(postgres::q(ctx))?;
                if changed > 0 {
                    public.append(UPSERT, code, body).await?;
                    report.changed += 1;
                } else {
                    report.unchanged += 1;
                }
            }
            tx.commit().await.map_err(postgres::q(ctx))?;
            Ok(report)
        }
    }
}

/// Withdraws a procedure: phones hide it; returns false when it was not active.
pub async fn withdraw(db: &Db, code: &str) -> DbResult<bool> {
    let ctx = "withdrawing a procedure";
    let code = code.to_string();
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                let n = tx
                    .execute(
                        "UPDATE procedures SET withdrawn = 1, updated_at = ?2 WHERE code = ?1 AND withdrawn = 0",
                        rusqlite::params![code, now_millis()],
                    )
                    .map_err(sqlite::q(ctx))?;
                if n > 0 {
                    feed::append_sqlite(tx, PUBLIC, WITHDRAW, &code, "null")?;
                }
                Ok(n > 0)
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let public = feed::lock_pg(&tx, PUBLIC).await?;
            let n = tx
                .execute(
                    "UPDATE procedures SET withdrawn = TRUE, updated_at = $2 WHERE code = $1 AND NOT withdrawn",
                    &[&code, &now_millis()],
                )
                .await
                .map_err(postgres::q(ctx))?;
            if n > 0 {
                public.append(WITHDRAW, &code, "null").await?;
            }
            tx.commit().await.map_err(postgres::q(ctx))?;
            Ok(n > 0)
        }
    }
}

pub async fn count_all(db: &Db) -> DbResult<u64> {
    let ctx = "counting procedures";
    let n: i64 = match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, |c| c.query_row("SELECT count(*) FROM procedures", [], |r| r.get(0))).await?
        }
        Db::Postgres(pool) => pool
            .client()
            .await?
            .query_one("SELECT count(*) FROM procedures", &[])
            .await
            .map_err(postgres::q(ctx))?
            .get(0),
    };
    Ok(n as u64)
}

pub async fn list_active(db: &Db) -> DbResult<Vec<Procedure>> {
    let ctx = "listing procedures";
    let bodies: Vec<String> = match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, |c| {
                let mut stmt =
                    c.prepare_cached("SELECT body FROM procedures WHERE withdrawn = 0 ORDER BY code")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .await?
        }
        Db::Postgres(pool) => pool
            .client()
            .await?
            .query("SELECT body FROM procedures WHERE NOT withdrawn ORDER BY code COLLATE \"C\"", &[])
            .await
            .map_err(postgres::q(ctx))?
            .into_iter()
            .map(|r| r.get(0))
            .collect(),
    };
    bodies.iter().map(|b| decode(b)).collect()
}

pub async fn get_active(db: &Db, code: &str) -> DbResult<Option<Procedure>> {
    let ctx = "reading a procedure";
    let code = code.to_string();
    let body: Option<String> = match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| {
                use rusqlite::OptionalExtension;
                c.query_row("SELECT body FROM procedures WHERE code = ?1 AND withdrawn = 0", [code], |r| {
                    r.get(0)
                })
                .optional()
            })
            .await?
        }
        Db::Postgres(pool) => pool
            .client()
            .await?
            .query_opt("SELECT body FROM procedures WHERE code = $1 AND NOT withdrawn", &[&code])
            .await
            .map_err(postgres::q(ctx))?
            .map(|r| r.get(0)),
    };
    body.as_deref().map(decode).transpose()
}
