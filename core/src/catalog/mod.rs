//! The procedure catalog: what a resident can apply for, cached offline.
//!
//! The server publishes procedures on the public change feed (`procedure.upsert`,
//! `procedure.withdraw`); [`changes`] applies them; [`queries`] browses and searches the cache.

pub mod cache;
pub mod changes;
pub mod model;
pub mod queries;

pub use model::*;
pub use queries::{CatalogStatus, ProcedureSummary};
