//! Case drafts: forms filled in offline, checked with the same rules on the phone and the server.

pub mod agency;
pub mod attachments;
pub mod backup;
pub mod content_type;
pub mod hlc;
pub mod validation;
pub mod changes;
pub(crate) mod commands;
pub mod store;
pub mod wire;
