//! Test backends: a fresh SQLite file, and a fresh database on the PostgreSQL server named by
//! `CONGDAN_TEST_PG_URL` (scripts/test.sh starts a throwaway cluster and sets it).

#![allow(dead_code)]

pub mod identity;

use congdan_server::config::RateLimit;
use congdan_server::{ServerConfig, RunningServer};

pub struct Backend {
    pub name: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("server.db").display());
    Backend { name: "sqlite", url, _dir: Some(dir) }
}

pub async fn postgres() -> Backend {
    let admin = std::env::var("CONGDAN_TEST_PG_URL").expect(
        "CONGDAN_TEST_PG_URL is not set: run the tests through scripts/test.sh, which starts PostgreSQL",
    );
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(connection);
    let name = format!("congdan_test_{}", uuid::Uuid::new_v4().simple());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let base = admin.rsplit_once('/').expect("URL with a database name").0;
    Backend { name: "postgres", url: format!("{base}/{name}"), _dir: None }
}

pub fn config(url: &str) -> ServerConfig {
    let mut c = ServerConfig::embedded(std::path::Path::new("."));
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.database_url = url.to_string();
    c.seed_demo_data = true;
    // Every test client is 127.0.0.1, and the server's own calls to /dev-idp count too.
    c.identity.auth_rate_limit = RateLimit { burst: 10_000, refill_secs: 0.001 };
    c
}

pub async fn start(url: &str) -> RunningServer {
    congdan_server::start(config(url)).await.expect("server starts")
}

/// Runs a test body once per backend, as separate #[tokio::test]s.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let backend = common::sqlite().await;
                ($body)(backend).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let backend = common::postgres().await;
                ($body)(backend).await;
            }
        }
    };
}
