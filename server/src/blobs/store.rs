//! Blob uploads for both databases. Each resident uploads their own copy (keyed by account and
//! SHA-256): a resident can only attach what they sent themselves, and nobody learns whether
//! someone else holds a file. The bytes live in the database (`blob_chunks`), so every server
//! instance can serve and finish every upload.

use crate::db::{now_millis, postgres, sqlite, Db, DbResult};

/// An upload as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub size: i64,
    pub media_type: String,
    /// Bytes received so far (the next chunk's offset).
    pub received: i64,
    /// All bytes received, the hash and the type checked.
    pub complete: bool,
}

/// What appending a chunk did.
#[derive(Debug, PartialEq, Eq)]
pub enum Append {
    /// Stored; the upload now holds this many bytes.
    Stored(i64),
    /// The chunk does not start where the upload stands (here).
    OffsetMismatch(i64),
    /// The chunk would make the upload longer than declared.
    TooLong,
    /// No upload was offered under this name.
    Missing,
}

pub async fn get(db: &Db, account: &str, sha256: &str) -> DbResult<Option<Upload>> {
    let ctx = "reading an upload";
    match db {
        Db::Sqlite(pool) => {
            let (account, sha256) = (account.to_string(), sha256.to_string());
            pool.read(ctx, move |c| {
                use rusqlite::OptionalExtension;
                c.query_row(
                    "SELECT size, media_type, received, complete FROM blobs WHERE account_id = ?1 AND sha256 = ?2",
                    [&account, &sha256],
                    |r| Ok(Upload { size: r.get(0)?, media_type: r.get(1)?, received: r.get(2)?, complete: r.get::<_, i64>(3)? != 0 }),
                )
                .optional()
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let row = client
                .query_opt(
                    "SELECT size, media_type, received, complete FROM blobs WHERE account_id = $1 AND sha256 = $2",
                    &[&account, &sha256],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(row.map(|r| Upload { size: r.get(0), media_type: r.get(1), received: r.get(2), complete: r.get(3) }))
        }
    }
}

/// Creates the upload, or keeps the one there. An unfinished upload declared with another size
/// or type starts again from zero (the phone's file changed its mind; the hash decides anyway).
pub async fn offer(db: &Db, account: &str, sha256: &str, size: i64, media_type: &str) -> DbResult<Upload> {
    let ctx = "offering an upload";
    let now = now_millis();
    match db {
        Db::Sqlite(pool) => {
            let (account, sha256, media_type) = (account.to_string(), sha256.to_string(), media_type.to_string());
            pool.write(ctx, move |tx| {
                tx.execute(
                    "DELETE FROM blob_chunks WHERE account_id = ?1 AND sha256 = ?2 AND EXISTS (SELECT 1 FROM blobs \
                     WHERE account_id = ?1 AND sha256 = ?2 AND complete = 0 AND (size <> ?3 OR media_type <> ?4))",
                    rusqlite::params![account, sha256, size, media_type],
                )
                .map_err(sqlite::q(ctx))?;
                tx.execute(
                    "INSERT INTO blobs(account_id, sha256, size, media_type, received, complete, created_at) \
                     VALUES (?1, ?2, ?3, ?4, 0, 0, ?5) ON CONFLICT(account_id, sha256) DO UPDATE \
                     SET size = excluded.size, media_type = excluded.media_type, received = 0 \
                     WHERE blobs.complete = 0 AND (blobs.size <> excluded.size OR blobs.media_type <> excluded.media_type)",
                    rusqlite::params![account, sha256, size, media_type, now],
                )
                .map_err(sqlite::q(ctx))?;
                tx.query_row(
                    "SELECT size, media_type, received, complete FROM blobs WHERE account_id = ?1 AND sha256 = ?2",
                    [&account, &sha256],
                    |r| Ok(Upload { size: r.get(0)?, media_type: r.get(1)?, received: r.get(2)?, complete: r.get::<_, i64>(3)? != 0 }),
                )
                .map_err(sqlite::q(ctx))
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            tx.execute(
                "INSERT INTO blobs(account_id, sha256, size, media_type, received, complete, created_at) \
                 VALUES ($1, $2, $3, $4, 0, FALSE, $5) ON CONFLICT (account_id, sha256) DO NOTHING",
                &[&account, &sha256, &size, &media_type, &now],
            )
            .await
            .map_err(postgres::q(ctx))?;
            let row = tx
                .query_one(
                    "SELECT size, media_type, received, complete FROM blobs WHERE account_id = $1 AND sha256 = $2 FOR UPDATE",
                    &[&account, &sha256],
                )
                .await
                .map_err(postgres::q(ctx))?;
            let mut upload = Upload { size: row.get(0), media_type: row.get(1), received: row.get(2), complete: row.get(3) };
            if !upload.complete && (upload.size != size || upload.media_type != media_type) {
                tx.execute("DELETE FROM blob_chunks WHERE account_id = $1 AND sha256 = $2", &[&account, &sha256])
                    .await
                    .map_err(postgres::q(ctx))?;
                tx.execute(
                    "UPDATE blobs SET size = $3, media_type = $4, received = 0 WHERE account_id = $1 AND sha256 = $2",
                    &[&account, &sha256, &size, &media_type],
                )
                .await
                .map_err(postgres::q(ctx))?;
                upload = Upload { size, media_type: media_type.to_string(), received: 0, complete: false };
            }
            tx.commit().await.map_err(postgres::q(ctx))?;
            Ok(upload)
        }
    }
}

/// Stores a chunk at `offset` if that is exactly where the upload stands, in one transaction
/// with the new length (two racing copies of one chunk: one wins, the other is told the offset).
pub async fn append(db: &Db, account: &str, sha256: &str, offset: i64, data: Vec<u8>) -> DbResult<Append> {
    let ctx = "storing a chunk";
    let len = data.len() as i64;
    let decide = move |found: Option<(i64, i64, bool)>| match found {
        None => Some(Append::Missing),
        Some((_, received, complete)) if complete || received != offset => Some(Append::OffsetMismatch(received)),
        Some((size, received, _)) if received + len > size => Some(Append::TooLong),
        Some(_) => None,
    };
    match db {
        Db::Sqlite(pool) => {
            let (account, sha256) = (account.to_string(), sha256.to_string());
            pool.write(ctx, move |tx| {
                use rusqlite::OptionalExtension;
                let found = tx
                    .query_row(
                        "SELECT size, received, complete FROM blobs WHERE account_id = ?1 AND sha256 = ?2",
                        [&account, &sha256],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)),
                    )
                    .optional()
                    .map_err(sqlite::q(ctx))?;
                if let Some(outcome) = decide(found) {
                    return Ok(outcome);
                }
                tx.execute(
                    "INSERT INTO blob_chunks(account_id, sha256, start_byte, data) VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![account, sha256, offset, data],
                )
                .map_err(sqlite::q(ctx))?;
                tx.execute(
                    "UPDATE blobs SET received = received + ?3 WHERE account_id = ?1 AND sha256 = ?2",
                    rusqlite::params![account, sha256, len],
                )
                .map_err(sqlite::q(ctx))?;
                Ok(Append::Stored(offset + len))
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            let found = tx
                .query_opt(
                    "SELECT size, received, complete FROM blobs WHERE account_id = $1 AND sha256 = $2 FOR UPDATE",
                    &[&account, &sha256],
                )
                .await
                .map_err(postgres::q(ctx))?
                .map(|r| (r.get(0), r.get(1), r.get(2)));
            if let Some(outcome) = decide(found) {
                return Ok(outcome);
            }
            tx.execute(
                "INSERT INTO blob_chunks(account_id, sha256, start_byte, data) VALUES ($1, $2, $3, $4)",
                &[&account, &sha256, &offset, &data],
            )
            .await
            .map_err(postgres::q(ctx))?;
            tx.execute(
                "UPDATE blobs SET received = received + $3 WHERE account_id = $1 AND sha256 = $2",
                &[&account, &sha256, &len],
            )
            .await
            .map_err(postgres::q(ctx))?;
            tx.commit().await.map_err(postgres::q(ctx))?;
            Ok(Append::Stored(offset + len))
        }
    }
}

/// The chunk starting exactly at `start`, if there is one (reads a blob one chunk at a time; a
/// chunk starting earlier means one went missing).
pub async fn chunk_at(db: &Db, account: &str, sha256: &str, start: i64) -> DbResult<Option<Vec<u8>>> {
    Ok(chunk_covering(db, account, sha256, start).await?.filter(|(first, _)| *first == start).map(|(_, data)| data))
}

pub async fn mark_complete(db: &Db, account: &str, sha256: &str) -> DbResult<()> {
    let ctx = "finishing an upload";
    match db {
        Db::Sqlite(pool) => {
            let (account, sha256) = (account.to_string(), sha256.to_string());
            pool.write(ctx, move |tx| {
                tx.execute("UPDATE blobs SET complete = 1 WHERE account_id = ?1 AND sha256 = ?2", [&account, &sha256])
                    .map_err(sqlite::q(ctx))?;
                Ok(())
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            client
                .execute("UPDATE blobs SET complete = TRUE WHERE account_id = $1 AND sha256 = $2", &[&account, &sha256])
                .await
                .map_err(postgres::q(ctx))?;
            Ok(())
        }
    }
}

/// Throws an upload away (its bytes did not match its name or its type).
pub async fn discard(db: &Db, account: &str, sha256: &str) -> DbResult<()> {
    let ctx = "discarding an upload";
    match db {
        Db::Sqlite(pool) => {
            let (account, sha256) = (account.to_string(), sha256.to_string());
            pool.write(ctx, move |tx| {
                tx.execute("DELETE FROM blob_chunks WHERE account_id = ?1 AND sha256 = ?2", [&account, &sha256])
                    .map_err(sqlite::q(ctx))?;
                tx.execute("DELETE FROM blobs WHERE account_id = ?1 AND sha256 = ?2", [&account, &sha256])
                    .map_err(sqlite::q(ctx))?;
                Ok(())
            })
            .await
        }
        Db::Postgres(pool) => {
            let mut client = pool.client().await?;
            let tx = client.transaction().await.map_err(postgres::q(ctx))?;
            tx.execute("DELETE FROM blob_chunks WHERE account_id = $1 AND sha256 = $2", &[&account, &sha256])
                .await
                .map_err(postgres::q(ctx))?;
            tx.execute("DELETE FROM blobs WHERE account_id = $1 AND sha256 = $2", &[&account, &sha256])
                .await
                .map_err(postgres::q(ctx))?;
            tx.commit().await.map_err(postgres::q(ctx))
        }
    }
}

/// Of `hashes`, those that are not a complete upload of `account` (what a submission may not name).
pub async fn missing_for(db: &Db, account: &str, hashes: Vec<String>) -> DbResult<Vec<String>> {
    let mut missing = Vec::new();
    for sha in hashes {
        match get(db, account, &sha).await? {
            Some(upload) if upload.complete => {}
            _ => missing.push(sha),
        }
    }
    Ok(missing)
}

/// Records which files a case was submitted with (inside the case's transaction).
pub fn attach_to_case_sqlite(
    tx: &rusqlite::Transaction<'_>,
    case_id: &str,
    attachments: &std::collections::BTreeMap<String, Vec<String>>,
) -> DbResult<()> {
    for (rule, hashes) in attachments {
        for sha in hashes {
            tx.execute(
                "INSERT INTO case_attachments(case_id, rule_id, sha256) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                rusqlite::params![case_id, rule, sha],
            )
            .map_err(sqlite::q("recording a case's files"))?;
        }
    }
    Ok(())
}

/// [`attach_to_case_sqlite`] for PostgreSQL.
pub async fn attach_to_case_pg(
    tx: &tokio_postgres::Transaction<'_>,
    case_id: &str,
    attachments: &std::collections::BTreeMap<String, Vec<String>>,
) -> DbResult<()> {
    for (rule, hashes) in attachments {
        for sha in hashes {
            tx.execute(
                "INSERT INTO case_attachments(case_id, rule_id, sha256) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&case_id, rule, sha],
            )
            .await
            .map_err(postgres::q("recording a case's files"))?;
        }
    }
    Ok(())
}

/// A case's files: (rule id, SHA-256), in order.
pub async fn case_attachments(db: &Db, case_id: &str) -> DbResult<Vec<(String, String)>> {
    let ctx = "reading a case's files";
    match db {
        Db::Sqlite(pool) => {
            let case_id = case_id.to_string();
            pool.read(ctx, move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT rule_id, sha256 FROM case_attachments WHERE case_id = ?1 ORDER BY rule_id, sha256",
                )?;
                let rows = stmt.query_map([&case_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let rows = client
                .query("SELECT rule_id, sha256 FROM case_attachments WHERE case_id = $1 ORDER BY rule_id, sha256", &[&case_id])
                .await
                .map_err(postgres::q(ctx))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        }
    }
}

/// One file of a case, as its agency sees it: the form's attachment rule, the hash, and the
/// type and size of the resident's upload.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CaseFile {
    pub field: String,
    pub sha256: String,
    pub media_type: String,
    pub size: i64,
}

/// A case's files with their type and size (uploads of `owner`, the case's resident), in order.
pub async fn case_files(db: &Db, case_id: &str, owner: &str) -> DbResult<Vec<CaseFile>> {
    let ctx = "listing a case's files";
    match db {
        Db::Sqlite(pool) => {
            let (case_id, owner) = (case_id.to_string(), owner.to_string());
            pool.read(ctx, move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT a.rule_id, a.sha256, b.media_type, b.size FROM case_attachments a \
                     JOIN blobs b ON b.account_id = ?2 AND b.sha256 = a.sha256 AND b.complete = 1 \
                     WHERE a.case_id = ?1 ORDER BY a.rule_id, a.sha256",
                )?;
                let rows = stmt.query_map([&case_id, &owner], |r| {
                    Ok(CaseFile { field: r.get(0)?, sha256: r.get(1)?, media_type: r.get(2)?, size: r.get(3)? })
                })?;
                rows.collect()
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let rows = client
                .query(
                    "SELECT a.rule_id, a.sha256, b.media_type, b.size FROM case_attachments a \
                     JOIN blobs b ON b.account_id = $2 AND b.sha256 = a.sha256 AND b.complete \
                     WHERE a.case_id = $1 ORDER BY a.rule_id, a.sha256",
                    &[&case_id, &owner],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(rows
                .iter()
                .map(|r| CaseFile { field: r.get(0), sha256: r.get(1), media_type: r.get(2), size: r.get(3) })
                .collect())
        }
    }
}

/// The chunk holding byte `at` of an upload: its first byte's offset and its bytes (a download
/// may start anywhere, chunks are as long as the phone sent them).
pub async fn chunk_covering(db: &Db, account: &str, sha256: &str, at: i64) -> DbResult<Option<(i64, Vec<u8>)>> {
    let ctx = "reading a chunk";
    match db {
        Db::Sqlite(pool) => {
            let (account, sha256) = (account.to_string(), sha256.to_string());
            pool.read(ctx, move |c| {
                use rusqlite::OptionalExtension;
                c.prepare_cached(
                    "SELECT start_byte, data FROM blob_chunks WHERE account_id = ?1 AND sha256 = ?2 AND start_byte <= ?3 \
                     ORDER BY start_byte DESC LIMIT 1",
                )?
                .query_row(rusqlite::params![account, sha256, at], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            let row = client
                .query_opt(
                    "SELECT start_byte, data FROM blob_chunks WHERE account_id = $1 AND sha256 = $2 AND start_byte <= $3 \
                     ORDER BY start_byte DESC LIMIT 1",
                    &[&account, &sha256, &at],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        }
    }
}

/// Removes the uploads never finished that were offered before `cutoff_ms` (the phone gave up,
/// or lost the file), with their chunks. A phone that comes back later offers the file again
/// and starts from zero. Returns how many uploads went.
pub async fn remove_abandoned(db: &Db, cutoff_ms: i64) -> DbResult<u64> {
    let ctx = "removing abandoned uploads";
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                tx.execute(
                    "DELETE FROM blob_chunks WHERE (account_id, sha256) IN \
                     (SELECT account_id, sha256 FROM blobs WHERE complete = 0 AND created_at < ?1)",
                    [cutoff_ms],
                )
                .map_err(sqlite::q(ctx))?;
                let removed = tx
                    .execute("DELETE FROM blobs WHERE complete = 0 AND created_at < ?1", [cutoff_ms])
                    .map_err(sqlite::q(ctx))?;
                Ok(removed as u64)
            })
            .await
        }
        Db::Postgres(pool) => {
            let client = pool.client().await?;
            // One statement: the uploads and their chunks go together or not at all. A chunk
            // being appended right now waits for the upload's row lock (see `append`).
            let row = client
                .query_one(
                    "WITH gone AS (DELETE FROM blobs WHERE NOT complete AND created_at < $1 RETURNING account_id, sha256), \
                     chunks AS (DELETE FROM blob_chunks c USING gone WHERE c.account_id = gone.account_id AND c.sha256 = gone.sha256) \
                     SELECT count(*) FROM gone",
                    &[&cutoff_ms],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(row.get::<_, i64>(0) as u64)
        }
    }
}
