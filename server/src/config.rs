//! Server configuration, from flags or the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `sqlite://path/to/file.db` (in-memory databases are refused);
    /// `postgres://user:password@host:port/db` for production.
    pub database_url: String,
    /// Publish the demo catalog when the catalog is empty.
    pub seed_demo_data: bool,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl ServerConfig {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";

    /// The embedded default: a SQLite file under `data_dir`, seeded with demo data.
    pub fn embedded(data_dir: &Path) -> ServerConfig {
        ServerConfig {
            listen: Self::DEFAULT_LISTEN.parse().expect("valid default address"),
            database_url: sqlite_url(&data_dir.join("congdan-server.db")),
            seed_demo_data: true,
            max_body_bytes: 64 * 1024,
        }
    }
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Which database a URL names, without exposing its password in errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite(PathBuf),
    Postgres(String),
}

pub fn parse_database_url(url: &str) -> Result<DatabaseTarget, String> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        if path.is_empty() {
            return Err("sqlite URL needs a file path".into());
        }
        // Each pooled connection would get its own private in-memory database.
        if path.starts_with(':') || path.starts_with("file:") {
            return Err("sqlite URL must name a file (in-memory databases are not supported)".into());
        }
        return Ok(DatabaseTarget::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseTarget::Postgres(url.to_string()));
    }
    Err("database URL must start with sqlite:// or postgres://".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(parse_database_url("sqlite://data/s.db"), Ok(DatabaseTarget::Sqlite("data/s.db".into())));
        assert_eq!(parse_database_url("sqlite:s.db"), Ok(DatabaseTarget::Sqlite("s.db".into())));
        assert!(matches!(parse_database_url("postgres://u@h/db"), Ok(DatabaseTarget::Postgres(_))));
        for bad in ["sqlite::memory:", "sqlite://", "sqlite:file:x?mode=memory", "mysql://x", ""] {
            assert!(parse_database_url(bad).is_err(), "{bad}");
        }
    }
}
