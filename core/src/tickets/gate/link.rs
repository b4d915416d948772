//! The gate's server link. A gate is a `Core` logged in with the operator role: it pulls the
//! operator keys (`GET /v1/operator/keys`) and the signed revocation list
//! (`GET /v1/operator/revocations`), and uploads its taps through the one outbox
//! (`gate.taps`). Every step is optional for the gate: whatever fails, it keeps deciding on
//! the keys and list it already holds, and the taps wait in the outbox.

use base64::Engine;
use serde::Deserialize;

use crate::core::Core;
use crate::error::{Error, Result};
use crate::outbox::DrainReport;
use crate::sync::client::Method;

use super::keys::OperatorKeys;

pub const KEYS_PATH: &str = "v1/operator/keys";
pub const REVOCATIONS_PATH: &str = "v1/operator/revocations";

/// The revocation list endpoint's answer: the signed statement (type `0x22`), base64.
#[derive(Debug, Deserialize)]
struct RevocationsBody {
    statement: String,
}

/// Reads base64 in either alphabet, padded or not.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(text).ok())
}

pub(crate) async fn pull_keys(core: &Core) -> Result<OperatorKeys> {
    let body: serde_json::Value = core.session().send_authorized(Method::GET, KEYS_PATH, None, None).await?;
    OperatorKeys::from_json(body.to_string().as_bytes()).map_err(|e| Error::BadData(e.to_string()))
}

pub(crate) async fn pull_revocations(core: &Core) -> Result<Vec<u8>> {
    let body: RevocationsBody = core.session().send_authorized(Method::GET, REVOCATIONS_PATH, None, None).await?;
    decode_base64(&body.statement).ok_or_else(|| Error::BadData("revocation list is not base64".into()))
}

/// What one exchange with the server did. Failures are reported, not raised: the gate runs on.
#[derive(Debug, Clone, Default)]
pub struct LinkReport {
    /// Operator keys now held (after a successful pull, or from before).
    pub keys: usize,
    pub keys_error: Option<String>,
    /// Sequence and size of the revocation list held.
    pub revocation_sequence: u64,
    pub revoked: usize,
    pub revocations_error: Option<String>,
    /// Taps put into the outbox by this exchange.
    pub taps_queued: usize,
    pub upload: Option<DrainReport>,
    pub upload_error: Option<String>,
}

impl LinkReport {
    /// Nothing came from the server and nothing went to it (unreachable, or refusing).
    pub fn all_failed(&self) -> bool {
        self.keys_error.is_some() && self.revocations_error.is_some() && self.upload.as_ref().is_none_or(|u| u.sent == 0)
    }
}
