//! The server's one storage interface with two implementations: a SQLite file (the embedded
//! default, one instance) and PostgreSQL (production, many instances). Each capability writes
//! its queries for both in its own `store.rs`, matching on [`Db`].
//!
//! Portability: plain tables, `INSERT … ON CONFLICT`, `UPDATE … RETURNING` and row locks
//! (`SELECT … FOR UPDATE`) only, no advisory locks, `LISTEN/NOTIFY` or triggers, so the same
//! schema runs on PostgreSQL-compatible distributed engines (see docs/operations.md).

pub mod postgres;
pub mod sqlite;

use crate::config::{parse_database_url, DatabaseTarget};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database query failed while {context}: {message}")]
    Query { context: &'static str, message: String },
    #[error("stored data unreadable: {0}")]
    Corrupt(String),
}

pub type DbResult<T> = Result<T, DbError>;

#[derive(Clone)]
pub enum Db {
    Sqlite(sqlite::SqlitePool),
    Postgres(postgres::PgPool),
}

impl Db {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> DbResult<Db> {
        let db = match parse_database_url(url).map_err(DbError::Config)? {
            DatabaseTarget::Sqlite(path) => Db::Sqlite(sqlite::SqlitePool::open(&path).await?),
            DatabaseTarget::Postgres(url) => Db::Postgres(postgres::PgPool::connect(&url).await?),
        };
        Ok(db)
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    pub async fn ping(&self) -> DbResult<()> {
        match self {
            Db::Sqlite(p) => p.read("ping", |c| c.query_row("SELECT 1", [], |_| Ok(()))).await,
            Db::Postgres(p) => p.client().await?.simple_query("SELECT 1").await.map(|_| ()).map_err(
                |e| DbError::Unavailable(postgres::describe(&e)),
            ),
        }
    }
}

pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
