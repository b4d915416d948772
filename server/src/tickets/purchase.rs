//! `POST /v1/tickets/purchases`: the `ticket.purchase` command of the one outbox. Exactly once
//! per idempotency key, like a case submission (`cases::idempotency`): the key is claimed with
//! a fingerprint of the body, the payment is charged under the same key (a provider charges a
//! key once), and the ticket, its `ticket.issued` change and the key's answer commit together.
//!
//! So a purchase retried after a timeout never charges or issues twice: if the first attempt
//! finished, the retry gets its answer back; if it died after charging but before issuing, the
//! retry charges the same key (the provider returns the first charge) and issues the ticket.
//!
//! The work runs in its own task: a phone that hangs up (a train entering a tunnel) does not
//! cancel a purchase half-way; its retry finds the answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use congdan_core::crypto::hex;
use congdan_core::crypto::jws::{b64url, b64url_decode};
use congdan_core::drafts::validation::CalendarDate;
use congdan_core::tickets::network;
use congdan_core::tickets::wire::{decompress_device_key, ticket_id, Product, Ticket, TicketError};
use serde::Deserialize;

use super::payment::{ChargeRequest, DemoPaymentProvider, PaymentError, PaymentProvider};
use super::{keys, pricing, store};
use crate::app::AppState;
use crate::cases::{claim_command, error_body, idempotency, idempotency_key, json_response};
use crate::error::ApiError;
use crate::identity::auth::Authenticated;

/// Tickets one account may be issued in a day: far above any rider's need, low enough that a
/// runaway client or a stolen session cannot drain a wallet or fill the database.
pub const MAX_TICKETS_PER_DAY: u64 = 50;

/// How many identical tickets one device may buy in one minute (each gets a later end): as
/// many as a day allows.
const MAX_SAME_MINUTE_TWINS: usize = MAX_TICKETS_PER_DAY as usize;

/// The product, by number (`2`) or by name (`"day"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum ProductRef {
    Code(u64),
    Name(String),
}

/// The body of a purchase.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurchaseRequest {
    product: ProductRef,
    #[serde(default)]
    origin: Option<u64>,
    #[serde(default)]
    destination: Option<u64>,
    /// The phone's device key the ticket is bound to: compressed P-256 (33 bytes), base64url.
    device_key: String,
    /// Never honoured: named only to refuse it with a clear reason. A concession comes from the
    /// account's verified identity attributes.
    #[serde(default)]
    concession: Option<serde_json::Value>,
}

/// The purchase's provider. The demo provider approves everything; a deployment with real money
/// puts its provider here.
fn payment_provider(state: &AppState) -> Arc<dyn PaymentProvider> {
    Arc::new(DemoPaymentProvider::new(state.db.clone()))
}

fn unprocessable(code: &'static str, message: impl Into<String>, message_vi: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message, message_vi)
}

fn ticket_refusal(e: TicketError) -> ApiError {
    let vi = match e {
        TicketError::UnknownStation(_) | TicketError::SameStation => "Ga không hợp lệ.",
        TicketError::StationsRequired => "Vé lượt cần ga đi và ga đến.",
        TicketError::StationsNotAllowed => "Vé ngày/tháng không có ga đi, ga đến.",
        TicketError::UnknownProduct(_) => "Loại vé không hợp lệ.",
        _ => "Yêu cầu mua vé không hợp lệ.",
    };
    unprocessable("invalid_purchase", e.to_string(), vi)
}

/// What the body asks for, checked without the database: the same body always gets the same
/// refusal, so nothing needs recording under the key.
struct Order {
    product: Product,
    origin: Option<u64>,
    destination: Option<u64>,
    device_key: Vec<u8>,
}

fn check_order(body: &[u8]) -> Result<Order, ApiError> {
    let request: PurchaseRequest = serde_json::from_slice(body)
        .map_err(|e| unprocessable("invalid_body", e.to_string(), "Dữ liệu gửi lên không đúng mẫu."))?;
    if request.concession.is_some() {
        return Err(unprocessable(
            "concession_not_accepted",
            "concessions are granted from verified identity attributes, never from the request",
            "Ưu đãi giá vé được xác định từ thông tin định danh đã xác thực, không theo yêu cầu gửi lên.",
        ));
    }
    let product = match request.product {
        ProductRef::Code(code) => Product::from_code(code).map_err(ticket_refusal)?,
        ProductRef::Name(name) => Product::from_name(&name).ok_or_else(|| ticket_refusal(TicketError::UnknownProduct(0)))?,
    };
    network::price(product, request.origin, request.destination, None).map_err(ticket_refusal)?;
    let bad_key = || {
        unprocessable(
            "bad_device_key",
            "device_key must be a compressed P-256 public key (33 bytes, base64url)",
            "Khóa thiết bị không hợp lệ.",
        )
    };
    let device_key = b64url_decode(request.device_key.trim()).map_err(|_| bad_key())?;
    decompress_device_key(&device_key).map_err(|_| bad_key())?;
    Ok(Order { product, origin: request.origin, destination: request.destination, device_key })
}

pub async fn purchase(
    State(state): State<AppState>,
    caller: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let order = check_order(&body)?;
    // Detached: a dropped connection must not stop a purchase between its charge and its ticket.
    let task = tokio::spawn(async move {
        if let Some(earlier) = claim_command(&state, &caller, &key, &body).await? {
            return Ok(earlier);
        }
        match buy(&state, &caller, &key, order).await {
            Ok(response) => Ok(response),
            Err(e) => {
                // Nothing committed: free the key so the phone's retry can go on.
                let _ = idempotency::release(&state.db, &caller.account_id, &key).await;
                Err(e)
            }
        }
    });
    task.await.map_err(ApiError::internal)?
}

async fn buy(state: &AppState, caller: &Authenticated, key: &str, order: Order) -> Result<Response, ApiError> {
    let refuse = |status: StatusCode, body: String| async move {
        store_refusal(state, caller, key, status, &body).await?;
        Ok::<Response, ApiError>(json_response(status, body))
    };
    if !store::is_registered_device(&state.db, &caller.account_id, &order.device_key).await? {
        let body = error_body(
            "device_key_not_registered",
            "the ticket can only be bound to a device key registered to this account",
            "Vé chỉ gắn được với thiết bị đã đăng nhập vào tài khoản này.",
            None,
        );
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, body).await;
    }
    let day_ago = crate::db::now_millis() - 86_400_000;
    if store::issued_since(&state.db, &caller.account_id, day_ago).await? >= MAX_TICKETS_PER_DAY {
        // Not recorded under the key: the same command may go through tomorrow.
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_purchases",
            format!("at most {MAX_TICKETS_PER_DAY} tickets a day"),
            "Bạn đã mua quá số vé cho phép trong một ngày. Vui lòng thử lại sau.",
        ));
    }
    let attributes = store::verified_attributes(&state.db, &caller.account_id).await?;
    let concession = pricing::concession_for(&attributes, CalendarDate::today_utc_plus_7());
    let fare_vnd =
        network::price(order.product, order.origin, order.destination, concession).map_err(ticket_refusal)?;
    let charge_id = if fare_vnd == 0 {
        None
    } else {
        let request = ChargeRequest { account_id: &caller.account_id, idempotency_key: key, amount_vnd: fare_vnd };
        match payment_provider(state).charge(request).await {
            Ok(charge) => Some(charge.charge_id),
            Err(PaymentError::Declined(reason)) => {
                let body = error_body("payment_declined", reason, "Thanh toán bị từ chối.", None);
                return refuse(StatusCode::PAYMENT_REQUIRED, body).await;
            }
            Err(PaymentError::Unavailable(e)) => return Err(ApiError::unavailable(e)),
        }
    };
    let now = crate::db::now_millis();
    let valid_from = (now / 1000).max(0) as u64 / 60 * 60;
    let ticket = Ticket {
        product: order.product,
        concession,
        origin: order.origin,
        destination: order.destination,
        fare_vnd,
        valid_from,
        valid_until: valid_from + order.product.validity_seconds(),
        device_key: order.device_key,
    };
    let operator_key = keys::current(&state.db).await?;
    let signer = operator_key.signer()?;
    // A ticket has no serial: the same product bought twice in one minute for one device would
    // be the same bytes, hence the same id. Each further one runs a minute longer instead.
    let mut ticket = ticket;
    let mut signed = ticket.sign(&signer).map_err(ApiError::internal)?;
    for _ in 0..MAX_SAME_MINUTE_TWINS {
        if !store::exists(&state.db, &hex(&ticket_id(&signed))).await? {
            break;
        }
        ticket.valid_until += 60;
        signed = ticket.sign(&signer).map_err(ApiError::internal)?;
    }
    let view = store::TicketView {
        ticket_id: hex(&ticket_id(&signed)),
        ticket: b64url(&signed),
        product: order.product.code(),
        concession: concession.map(|c| c.name().to_string()),
        origin: order.origin,
        destination: order.destination,
        fare_vnd,
        valid_from: ticket.valid_from,
        valid_until: ticket.valid_until,
        key_id: operator_key.key_id.clone(),
        issued_at_ms: now,
        revoked: false,
    };
    let new = store::NewTicket { account_id: caller.account_id.clone(), view, charge_id, key: key.to_string() };
    let body = store::issue(&state.db, new).await?;
    tracing::info!(product = order.product.name(), "ticket issued");
    Ok(json_response(StatusCode::CREATED, body))
}

async fn store_refusal(state: &AppState, caller: &Authenticated, key: &str, status: StatusCode, body: &str) -> Result<(), ApiError> {
    crate::cases::store::record_refusal(&state.db, &caller.account_id, key, status.as_u16(), body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: serde_json::Value) -> &'static str {
        match check_order(body.to_string().as_bytes()) {
            Ok(_) => "ok",
            Err(e) => e.code,
        }
    }

    #[test]
    fn orders_are_checked_before_anything_is_claimed() {
        let key = congdan_core::crypto::P256Signer::from_pkcs8(&congdan_core::crypto::P256Signer::generate_pkcs8().unwrap(), None)
            .unwrap();
        let device = b64url(&congdan_core::tickets::wire::compress_device_key(&key.public_key().bytes).unwrap());
        use serde_json::json;
        assert_eq!(code(json!({"product": 2, "device_key": device})), "ok");
        assert_eq!(code(json!({"product": "monthly", "device_key": device})), "ok");
        assert_eq!(code(json!({"product": 1, "origin": 1, "destination": 14, "device_key": device})), "ok");
        assert_eq!(code(json!({"product": 1, "device_key": device})), "invalid_purchase");
        assert_eq!(code(json!({"product": 1, "origin": 1, "destination": 15, "device_key": device})), "invalid_purchase");
        assert_eq!(code(json!({"product": 2, "origin": 1, "destination": 3, "device_key": device})), "invalid_purchase");
        assert_eq!(code(json!({"product": 9, "device_key": device})), "invalid_purchase");
        assert_eq!(code(json!({"product": 2, "device_key": device, "concession": 2})), "concession_not_accepted");
        assert_eq!(code(json!({"product": 2, "device_key": device, "fare_vnd": 0})), "invalid_body");
        assert_eq!(code(json!({"product": 2, "device_key": "AAAA"})), "bad_device_key");
        let off_curve = b64url(&[&[2u8][..], &[0xff; 32]].concat());
        assert_eq!(code(json!({"product": 2, "device_key": off_curve})), "bad_device_key");
    }
}
