//! The log filter every `congdan-server` process uses. Whatever `RUST_LOG` asks for, the
//! PostgreSQL driver stays at `info`: at `debug` it logs every statement with its parameters,
//! which carry token hashes, PKCE verifiers and national ID numbers.

use tracing_subscriber::EnvFilter;

/// `spec` (from `RUST_LOG`, or the default) with the driver pinned below `debug`.
pub fn filter(spec: &str) -> EnvFilter {
    let base = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    base.add_directive("tokio_postgres=info".parse().expect("valid directive"))
}

/// The filter from `RUST_LOG`, defaulting to `info,tower_http=info`.
pub fn from_env() -> EnvFilter {
    filter(&std::env::var("RUST_LOG").unwrap_or_else(|_| "info,tower_http=info".into()))
}
