//! Changes of the account feed owned by signing: `signature.request` (a request for this
//! resident, new or updated) and `signature.state` (cancelled, expired or decided). Applied in the
//! feed page's transaction; applying either twice changes nothing, and an older change never
//! overwrites a newer one.

use rusqlite::Transaction;

use super::api::{SignatureRequestView, SignatureStateChange, REQUEST_CHANGE, STATE_CHANGE};
use super::store;
use crate::error::{Error, Result};
use crate::sync::wire::Change;

/// Reasons are shown as they come; a server never needs more than this.
const MAX_REASON_CHARS: usize = 500;

/// 1 to 128 letters, digits, `-` or `_`: safe as one segment of a URL path.
pub(crate) fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn apply(tx: &Transaction<'_>, change: &Change) -> Result<()> {
    match change.kind.as_str() {
        REQUEST_CHANGE => {
            let view: SignatureRequestView = serde_json::from_value(change.data.clone())
                .map_err(|e| Error::BadData(format!("{REQUEST_CHANGE}: {e}")))?;
            // The id goes into request paths (`v1/signature-requests/{id}/document`).
            if !is_safe_id(&view.id) {
                return Err(Error::BadData(format!("{REQUEST_CHANGE}: request id is not a plain identifier")));
            }
            let sha = &view.document.sha256;
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::BadData(format!("{REQUEST_CHANGE}: document sha256 is not 64 hex digits")));
            }
            store::upsert(tx, &view, change.seq)
        }
        STATE_CHANGE => {
            let state: SignatureStateChange = serde_json::from_value(change.data.clone())
                .map_err(|e| Error::BadData(format!("{STATE_CHANGE}: {e}")))?;
            let reason: Option<String> = state.reason.map(|r| r.chars().take(MAX_REASON_CHARS).collect());
            store::set_state(tx, &state.id, state.state, reason.as_deref(), Some(change.seq))
        }
        other => Err(Error::BadData(format!("unknown change kind {other}"))),
    }
}
