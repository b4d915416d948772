//! Local storage: one SQLite file per app, opened once, shared by every capability.
//!
//! Pragmas, chosen for phones:
//! - `journal_mode=WAL`: readers never block the writer; an app kill cannot corrupt the file.
//! - `synchronous=NORMAL`: in WAL mode a commit survives an app kill (the WAL is written before
//!   the call returns); only a power cut can lose the last commits. FULL would fsync every
//!   autosave and cost battery and latency on cheap flash.
//! - `foreign_keys=ON`, `busy_timeout=5000` (other processes such as a share extension),
//!   `temp_store=MEMORY`, a 2 MiB page cache (low-end devices), and a WAL size limit.
//!
//! One connection behind a mutex serves every thread: SQLite serialises writers anyway, and one
//! connection keeps the memory small. A panic while the lock is held drops the open transaction,
//! which rolls back, so the poisoned lock is safely recovered.

mod migrations;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

pub use migrations::{schema_dump, LATEST_VERSION};

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let corrupt = |e: rusqlite::Error, context: &'static str| classify(e, path, context);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| corrupt(e, "opening the database"))?;
        configure(&conn).map_err(|e| corrupt(e, "configuring the database"))?;
        let mut store = Store { conn: Mutex::new(conn), path: path.to_path_buf() };
        migrations::migrate(store.conn.get_mut().unwrap_or_else(|p| p.into_inner()))
            .map_err(|e| match e {
                Error::Database { context, source } => classify(source, path, context),
                other => other,
            })?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs read-only queries.
    pub fn read<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.lock();
        f(&conn).map_err(|e| classify(e, &self.path, context))
    }

    /// Runs `f` in one IMMEDIATE transaction: all of it is committed, or none of it.
    pub fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| classify(e, &self.path, context))?;
        let value = f(&tx)?;
        tx.commit().map_err(|e| classify(e, &self.path, context))?;
        Ok(value)
    }

    /// `PRAGMA integrity_check`: true when SQLite finds nothing wrong.
    pub fn integrity_ok(&self) -> Result<bool> {
        self.read("checking integrity", |c| {
            c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        })
        .map(|s| s == "ok")
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // Touch the file header first: a file that is not SQLite fails here with NOTADB.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -2048)?;
    conn.pragma_update(None, "journal_size_limit", 4 * 1024 * 1024)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Turns SQLite's "this is not a database" family of errors into the typed corruption error.
fn classify(e: rusqlite::Error, path: &Path, context: &'static str) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if matches!(f.code, ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) {
            return Error::CorruptDatabase { path: path.to_path_buf() };
        }
    }
    Error::Database { context, source: e }
}

/// Small helpers shared by the capability modules' queries.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_file_is_a_typed_corruption_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.db");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        match Store::open(&path) {
            Err(Error::CorruptDatabase { .. }) => {}
            other => panic!("expected CorruptDatabase, got {other:?}"),
        }
    }

    #[test]
    fn truncated_database_is_a_typed_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.db");
        drop(Store::open(&path).unwrap());
        let bytes = std::fs::read(&path).unwrap();
        // Keep a valid header but destroy the schema page.
        let mut broken = bytes[..100].to_vec();
        broken.extend(std::iter::repeat_n(0xFFu8, 4096 - 100));
        std::fs::write(&path, broken).unwrap();
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
        assert!(matches!(
            Store::open(&path),
            Err(Error::CorruptDatabase { .. }) | Err(Error::Database { .. })
        ));
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.db");
        drop(Store::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", LATEST_VERSION + 1).unwrap();
        drop(c);
        assert!(matches!(Store::open(&path), Err(Error::SchemaTooNew { .. })));
    }

    #[test]
    fn negative_schema_version_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.db");
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", -1).unwrap();
        drop(c);
        assert!(matches!(Store::open(&path), Err(Error::BadData(_))));
    }

    #[test]
    fn failed_write_rolls_back_everything() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("core.db")).unwrap();
        let r: Result<()> = store.write("test", |tx| {
            tx.execute("INSERT INTO meta(key, value) VALUES ('a', '1')", [])
                .map_err(Error::db("test"))?;
            Err(Error::Cancelled)
        });
        assert!(r.is_err());
        let n: i64 = store
            .read("count", |c| c.query_row("SELECT count(*) FROM meta", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn store_is_shared_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(&dir.path().join("core.db")).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = store.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        s.write("insert", |tx| {
                            tx.execute(
                                "INSERT INTO meta(key, value) VALUES (?1, 'x')",
                                [format!("{t}-{i}")],
                            )
                            .map_err(Error::db("insert"))
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let n: i64 = store
            .read("count", |c| c.query_row("SELECT count(*) FROM meta", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 200);
        assert!(store.integrity_ok().unwrap());
    }
}
