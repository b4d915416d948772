//! congdan-ffi: the thin uniffi wrapper the Android and iOS shells load.
//!
//! One exported entry object ([`CongdanCore`]) wraps `congdan_core::Core` and hands out one
//! sub-object per capability. Records mirror the core's types (declared as uniffi remote types,
//! so there is no conversion code). Errors cross as [`CongdanError`], converted in one place.
//! Unwinding stays on: uniffi turns a panic into an exception instead of killing the app.

uniffi::setup_scaffolding!();

mod agency;
mod attachments;
mod catalog;
mod core_object;
mod credential;
mod drafts;
mod error;
mod gate;
mod identity;
mod platform;
mod signing;
mod tickets;

pub use agency::AgencyApi;
pub use catalog::CatalogApi;
pub use core_object::{CongdanCore, CoreSettings};
pub use drafts::DraftsApi;
pub use error::CongdanError;
pub use gate::GateApi;
pub use identity::IdentityApi;
pub use platform::{Keystore, NetworkMonitor, PlatformError, SyncProgressListener};
pub use signing::SigningApi;
pub use tickets::TicketsApi;
