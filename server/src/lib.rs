//! congdan-server: the thin API server the phones sync with.
//!
//! Stateless by design: every instance can answer every request, so several run behind a load
//! balancer on one PostgreSQL. Each capability is a folder with its routes and its storage for
//! both databases; [`feed`] is the one change feed they all write to.

pub mod app;
pub mod blobs;
pub mod cases;
pub mod catalog;
pub mod config;
pub mod db;
pub mod devidp;
pub mod drafts;
pub mod error;
pub mod feed;
pub mod identity;
pub mod logging;
pub mod openapi;
pub mod signing;
pub mod sync;
pub mod tickets;

pub use app::{serve, start, RunningServer};
pub use config::ServerConfig;
