//! congdan-core: the engine shared by the Android and iOS apps and the `congdan` CLI.
//!
//! It knows nothing about FFI or about which platform it runs on: the phone supplies its services
//! through the small traits in [`platform`]. Start with `docs/ARCHITECTURE.md` for the map.

pub mod catalog;
pub mod crypto;
mod core;
pub mod drafts;
pub mod error;
pub mod identity;
pub mod outbox;
pub mod platform;
pub mod signing;
pub mod store;
pub mod sync;
pub mod text;
pub mod tickets;

pub use crate::core::{CatalogService, Core, CoreConfig, DraftsService, IdentityService};
pub use crate::drafts::agency::AgencyService;
pub use crate::error::{Error, LoginError, LoginRequiredReason, Result};
