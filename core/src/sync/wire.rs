//! The change-feed wire format (`POST /v1/sync/pull`), shared by the core and the server so the
//! two can never drift. Requests are strict (unknown keys rejected by the server); responses are
//! read leniently so an older app keeps working against a newer server.

use serde::{Deserialize, Serialize};

/// The body of `POST /v1/sync/pull`: every feed the phone follows, in one round trip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    pub feeds: Vec<FeedCursor>,
    /// Changes per feed in this response (the server caps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedCursor {
    pub feed: String,
    /// Opaque cursor from the previous page; empty to start from the beginning.
    #[serde(default)]
    pub cursor: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    pub feeds: Vec<FeedPage>,
    /// The server's clock, so the phone can learn its own clock offset.
    pub server_time_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedPage {
    pub feed: String,
    /// In strictly increasing `seq` order.
    pub changes: Vec<Change>,
    /// Where the next pull of this feed starts.
    pub cursor: String,
    /// More changes are waiting after this page.
    pub has_more: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Position in the feed, assigned by the server, strictly increasing.
    pub seq: u64,
    /// `<capability-object>.<verb>`, e.g. `procedure.upsert`.
    pub kind: String,
    /// The entity the change is about (a procedure code, a case id).
    pub key: String,
    pub data: serde_json::Value,
}

/// Every error the server sends has this shape, with a stable machine `code`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_vi: Option<String>,
    /// Structured details (the field issues of a refused submission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

const CURSOR_VERSION: &str = "1";

/// Encodes a feed position as an opaque cursor (`1.<seq>`).
pub fn encode_cursor(seq: u64) -> String {
    format!("{CURSOR_VERSION}.{seq}")
}

/// Decodes a cursor; the empty cursor is the start of the feed. `None` for anything malformed.
pub fn decode_cursor(cursor: &str) -> Option<u64> {
    if cursor.is_empty() {
        return Some(0);
    }
    let (version, seq) = cursor.split_once('.')?;
    if version != CURSOR_VERSION || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if seq.len() > 1 && seq.starts_with('0') {
        return None;
    }
    seq.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(""), Some(0));
        for seq in [0u64, 1, 42, u64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(seq)), Some(seq));
        }
        for bad in ["5", "2.5", "1.", "1.-3", "1.05", "1.5x", "1.99999999999999999999", "x.1"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
