//! The operator's endpoints, pulled and pushed by gates (role `operator:<LINE>`; a resident gets
//! `403 forbidden`). They carry ticket ids only, never who a rider is.
//!
//! - `GET /v1/operator/keys`: the operator public keys gates trust, with their periods;
//! - `GET /v1/operator/revocations`: the signed revocation list (statement `0x22`);
//! - `POST /v1/operator/taps`: a batch of gate taps (the `gate.taps` command, idempotent by
//!   its key), which may revoke cloned tickets.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde::Serialize;

use super::{keys, revocations, taps};
use crate::app::AppState;
use crate::cases::{claim_command, idempotency, idempotency_key, json_response};
use crate::error::ApiError;
use crate::identity::auth::Authenticated;
use crate::identity::rejection::Rejection;

/// Every operator role starts with this (`operator:METRO-L1`).
pub const OPERATOR_ROLE: &str = "operator:";

/// One key of `GET /v1/operator/keys` (the shape `congdan_core::tickets::gate::keys` reads).
#[derive(Serialize)]
struct KeyView {
    key_id: String,
    algorithm: &'static str,
    /// Raw 32-byte Ed25519 public key, standard base64.
    public_key: String,
    /// Unix seconds: gates trust the key from here to `valid_until`.
    valid_from: u64,
    valid_until: u64,
    /// Unix seconds: the last moment the key signs tickets.
    signs_until: u64,
}

pub async fn keys(State(state): State<AppState>, caller: Authenticated) -> Result<Response, Rejection> {
    caller.require_role(OPERATOR_ROLE)?;
    let keys: Vec<KeyView> = keys::trusted(&state.db)
        .await?
        .into_iter()
        .map(|k| KeyView {
            key_id: k.key_id.clone(),
            algorithm: "Ed25519",
            public_key: base64::engine::general_purpose::STANDARD.encode(&k.public_key),
            valid_from: k.valid_from,
            valid_until: k.valid_until,
            signs_until: k.signs_until,
        })
        .collect();
    let body = serde_json::json!({ "keys": keys });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

pub async fn revocation_list(State(state): State<AppState>, caller: Authenticated) -> Result<Response, Rejection> {
    caller.require_role(OPERATOR_ROLE)?;
    let list = revocations::signed_list(&state.db).await?;
    Ok(json_response(StatusCode::OK, serde_json::to_string(&list).map_err(ApiError::internal)?))
}

pub async fn upload_taps(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    caller.require_role(OPERATOR_ROLE)?;
    let key = idempotency_key(&headers)?;
    let invalid = |message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_taps", message, "Dữ liệu lượt qua cổng không hợp lệ.");
    let batch: taps::TapBatch = serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))?;
    let now_secs = (crate::db::now_millis() / 1000).max(0) as u64;
    taps::check_batch(&batch, now_secs).map_err(invalid)?;
    // Detached like a purchase: a gate that hangs up does not leave its key locked half-way.
    let task = tokio::spawn(async move {
        if let Some(earlier) = claim_command(&state, &caller, &key, &body).await? {
            return Ok(earlier);
        }
        match taps::store_batch(&state.db, &caller.account_id, &key, batch.taps).await {
            Ok(body) => {
                tracing::info!("gate taps stored");
                Ok(json_response(StatusCode::OK, body))
            }
            Err(e) => {
                let _ = idempotency::release(&state.db, &caller.account_id, &key).await;
                Err(ApiError::from(e))
            }
        }
    });
    Ok(task.await.map_err(ApiError::internal)??)
}
