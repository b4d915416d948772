//! `POST /v1/sync/pull`: every followed feed in one round trip, so a phone wakes its radio once.

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Json;
use congdan_core::sync::wire::{decode_cursor, encode_cursor, FeedPage, PullRequest, PullResponse};

use crate::app::AppState;
use crate::error::{ApiError, ApiJson};
use crate::feed;
use crate::identity::{auth, store::account_feed, Rejection};

/// The caller's own feed (stored as `account:<account_id>`); needs authentication.
pub const ACCOUNT: &str = "account";

pub const MAX_LIMIT: u32 = 500;
pub const DEFAULT_LIMIT: u32 = 200;
const MAX_FEEDS: usize = 8;

pub async fn pull(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    ApiJson(request): ApiJson<PullRequest>,
) -> Result<Json<PullResponse>, Rejection> {
    if request.feeds.is_empty() || request.feeds.len() > MAX_FEEDS {
        return Err(ApiError::bad_request("bad_feeds", format!("ask for 1 to {MAX_FEEDS} feeds")).into());
    }
    let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request("bad_limit", format!("limit must be 1 to {MAX_LIMIT}")).into());
    }
    // The public feed stays anonymous: only a pull that names the account feed is authenticated
    // (so a proof is spent only when it is needed).
    let caller = if request.feeds.iter().any(|f| f.feed == ACCOUNT) {
        Some(auth::authenticate(&state.identity, &state.db, &method, "/v1/sync/pull", &headers).await?)
    } else {
        None
    };
    let mut pages = Vec::with_capacity(request.feeds.len());
    for (i, wanted) in request.feeds.iter().enumerate() {
        if request.feeds[..i].iter().any(|f| f.feed == wanted.feed) {
            return Err(ApiError::bad_request("bad_feeds", "each feed may be asked for once").into());
        }
        // `public`, or `account` meaning the caller's own; no other name (no one else's feed).
        let stored = match (wanted.feed.as_str(), &caller) {
            (feed::PUBLIC, _) => feed::PUBLIC.to_string(),
            (ACCOUNT, Some(caller)) => account_feed(&caller.account_id),
            _ => return Err(ApiError::not_found("unknown_feed", "no such feed").into()),
        };
        let after = decode_cursor(&wanted.cursor)
            .ok_or_else(|| ApiError::bad_request("bad_cursor", "cursor is malformed"))?;
        let (mut changes, head) = feed::read_page(&state.db, &stored, after, limit + 1).await?;
        if after > head {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "cursor_ahead",
                "cursor is beyond this feed's end; pull from the start",
                "Cần đồng bộ lại từ đầu.",
            )
            .into());
        }
        let has_more = changes.len() > limit as usize;
        changes.truncate(limit as usize);
        if let (ACCOUNT, Some(caller)) = (wanted.feed.as_str(), &caller) {
            crate::signing::record_delivery(&state.db, &caller.account_id, &changes).await?;
        }
        let cursor = encode_cursor(changes.last().map(|c| c.seq).unwrap_or(after));
        pages.push(FeedPage { feed: wanted.feed.clone(), changes, cursor, has_more });
    }
    Ok(Json(PullResponse { feeds: pages, server_time_ms: crate::db::now_millis() }))
}
