//! QR transit tickets, server side (issue 5): fare products priced for the rider, purchases
//! through the one outbox, the rider's tickets, and the operator's side for gates.
//!
//! - [`pricing`]: products and the concession verified identity attributes give;
//! - [`purchase`]: `POST /v1/tickets/purchases` (the `ticket.purchase` command), paid through a
//!   [`payment::PaymentProvider`];
//! - [`keys`]: the operator's Ed25519 ticket keys (rotation, validity, short key ids);
//! - [`store`]: tickets for both databases;
//! - [`operator`]: `GET /v1/operator/keys`, `GET /v1/operator/revocations`,
//!   `POST /v1/operator/taps` (role `operator:`), with [`revocations`] and [`taps`] (clone
//!   detection) behind them.
//!
//! Tickets are signed statements of type `0x20` (`congdan_core::tickets::wire`,
//! docs/ticket-format.md); their id is the first 16 bytes of SHA-256 over the signed bytes.

pub mod keys;
pub mod operator;
pub mod payment;
pub mod pricing;
pub mod purchase;
pub mod revocations;
pub mod store;
pub mod taps;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use congdan_core::drafts::validation::CalendarDate;
use serde::Deserialize;

use crate::app::AppState;
use crate::cases::json_response;
use crate::error::ApiError;
use crate::identity::auth::Authenticated;

pub use purchase::purchase;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

/// `GET /v1/tickets/products`: every product with the price for this rider (their verified
/// concession applied).
pub async fn products(State(state): State<AppState>, caller: Authenticated) -> Result<Response, ApiError> {
    let attributes = store::verified_attributes(&state.db, &caller.account_id).await?;
    let concession = pricing::concession_for(&attributes, CalendarDate::today_utc_plus_7());
    let body = serde_json::to_string(&pricing::catalogue(concession)).map_err(ApiError::internal)?;
    Ok(json_response(StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /v1/tickets`: the caller's own tickets, oldest first, paged.
pub async fn list(
    State(state): State<AppState>,
    caller: Authenticated,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit must be 1 to 200"));
    }
    let after = match params.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::bad_request("invalid_cursor", "unreadable cursor"))?,
    };
    // One more than asked tells whether there is a next page.
    let mut rows = store::list(&state.db, &caller.account_id, after, limit + 1).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|(seq, _)| seq.to_string())
    } else {
        None
    };
    let tickets: Vec<store::TicketView> = rows.into_iter().map(|(_, v)| v).collect();
    let body = serde_json::json!({ "tickets": tickets, "next_cursor": next_cursor });
    Ok(json_response(StatusCode::OK, body.to_string()))
}
