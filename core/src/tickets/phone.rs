//! The rider's side on the phone ([`TicketsService`], reached through `Core::tickets()`): buy a
//! ticket (through the one outbox, offline too), list the tickets kept on the phone, and show the
//! rotating code of one of them: the ticket plus a proof for the current time slot signed by the
//! device key in the platform keystore (the same key DPoP uses), on the server's clock.

use std::sync::Arc;

use super::qr::{self, QrMatrix};
use super::store::{self, Purchase, StoredTicket};
use super::wire::{self, compress_device_key, make_code, Concession, Product, TicketError};
use crate::core::Core;
use crate::crypto::{Algorithm, Signer, StatementError, SIGNATURE_LEN};
use crate::error::{Error, Result};
use crate::platform::Keystore;

/// How long one code is good for, unless configured otherwise. Gates accept the current slot
/// (and a little clock skew), so a screenshot stops working within about this long.
pub const DEFAULT_SLOT_SECONDS: u32 = 20;
/// Slots shorter than this leave a rider no time to scan; longer ones make screenshots last.
pub const MIN_SLOT_SECONDS: u32 = 5;
pub const MAX_SLOT_SECONDS: u32 = 120;

/// Why a ticket cannot be bought as asked or shown now; each has a plain message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketProblem {
    #[error("the ticket was revoked")]
    Revoked,
    #[error("the ticket has expired")]
    Expired,
    #[error("the ticket is not valid yet")]
    NotYetValid,
    #[error("the ticket is bound to another device")]
    OtherDevice,
    #[error("invalid order: {0}")]
    InvalidOrder(TicketError),
}

impl TicketProblem {
    /// Vietnamese first, then English.
    pub fn user_message(&self) -> (&'static str, &'static str) {
        match self {
            TicketProblem::Revoked => ("Vé này đã bị thu hồi.", "This ticket was revoked."),
            TicketProblem::Expired => ("Vé này đã hết hạn.", "This ticket has expired."),
            TicketProblem::NotYetValid => ("Vé này chưa đến thời gian sử dụng.", "This ticket is not valid yet."),
            TicketProblem::OtherDevice => (
                "Vé này gắn với điện thoại khác, chỉ hiển thị được trên điện thoại đó.",
                "This ticket belongs to another phone and can only be shown there.",
            ),
            TicketProblem::InvalidOrder(TicketError::UnknownStation(_) | TicketError::SameStation) => {
                ("Ga đi hoặc ga đến không hợp lệ.", "Invalid origin or destination station.")
            }
            TicketProblem::InvalidOrder(TicketError::StationsRequired) => {
                ("Vé lượt cần chọn ga đi và ga đến.", "A single journey needs an origin and a destination.")
            }
            TicketProblem::InvalidOrder(TicketError::StationsNotAllowed) => {
                ("Vé ngày và vé tháng không chọn ga.", "Passes have no origin or destination.")
            }
            TicketProblem::InvalidOrder(_) => ("Loại vé không hợp lệ.", "Invalid ticket type."),
        }
    }
}

fn problem(p: TicketProblem) -> Error {
    Error::Ticket { problem: p }
}

/// Where a ticket stands now (on the server's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketStatus {
    Active,
    NotYetValid,
    Expired,
    Revoked,
    /// Bought for another of the rider's phones: it can be listed here, not shown.
    OtherDevice,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Active => "active",
            TicketStatus::NotYetValid => "not_yet_valid",
            TicketStatus::Expired => "expired",
            TicketStatus::Revoked => "revoked",
            TicketStatus::OtherDevice => "other_device",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketSummary {
    /// Hex ticket id.
    pub id: String,
    pub product: Product,
    pub concession: Option<Concession>,
    pub origin: Option<u64>,
    pub destination: Option<u64>,
    pub fare_vnd: u64,
    /// Unix seconds.
    pub valid_from: u64,
    pub valid_until: u64,
    pub status: TicketStatus,
    pub revoked_reason: Option<String>,
}

/// The status of `ticket` at `now_secs` (server clock) for the phone whose device key is
/// `this_device` (compressed).
pub fn status_of(ticket: &StoredTicket, this_device: &[u8], now_secs: u64) -> TicketStatus {
    if ticket.revoked_at_ms.is_some() {
        TicketStatus::Revoked
    } else if now_secs >= ticket.ticket.valid_until {
        TicketStatus::Expired
    } else if ticket.ticket.device_key != this_device {
        TicketStatus::OtherDevice
    } else if now_secs < ticket.ticket.valid_from {
        TicketStatus::NotYetValid
    } else {
        TicketStatus::Active
    }
}

fn summary(ticket: &StoredTicket, this_device: &[u8], now_secs: u64) -> TicketSummary {
    let t = &ticket.ticket;
    TicketSummary {
        id: ticket.id.clone(),
        product: t.product,
        concession: t.concession,
        origin: t.origin,
        destination: t.destination,
        fare_vnd: t.fare_vnd,
        valid_from: t.valid_from,
        valid_until: t.valid_until,
        status: status_of(ticket, this_device, now_secs),
        revoked_reason: ticket.revoked_reason.clone(),
    }
}

/// The code to show now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketCode {
    pub ticket_id: String,
    /// The code's bytes (container, ticket, compact proof).
    pub bytes: Vec<u8>,
    /// Its QR text (base45).
    pub text: String,
    pub qr: QrMatrix,
    /// Start of the slot the proof is for (unix seconds, server clock).
    pub slot_start: u64,
    pub slot_seconds: u32,
    /// Whole seconds until the next slot's code is due (at least 1).
    pub seconds_remaining: u32,
}

/// Signs proofs with the device key in the platform keystore (the key stays there).
pub(crate) struct KeystoreSigner<'a>(pub &'a dyn Keystore);

impl Signer for KeystoreSigner<'_> {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EcdsaP256Sha256
    }
    fn key_id(&self) -> &[u8] {
        wire::PROOF_KEY_ID
    }
    fn sign(&self, message: &[u8]) -> std::result::Result<[u8; SIGNATURE_LEN], StatementError> {
        let sig = self.0.sign(message).map_err(|e| StatementError::Signing(e.0))?;
        sig.as_slice().try_into().map_err(|_| StatementError::Signing("keystore signature is not 64 bytes".into()))
    }
}

/// This phone's device key, compressed as tickets carry it.
pub(crate) fn this_device_key(keystore: &dyn Keystore) -> Result<Vec<u8>> {
    let point = keystore.device_public_key().map_err(|e| Error::Platform { service: "keystore", message: e.0 })?;
    compress_device_key(&point).map_err(|_| Error::Platform {
        service: "keystore",
        message: "the device key is not an uncompressed P-256 point".into(),
    })
}

/// The code of `ticket` for the slot containing `server_now_ms`, signed through `keystore`.
pub fn code_at(
    ticket: &StoredTicket,
    keystore: &dyn Keystore,
    server_now_ms: i64,
    slot_seconds: u32,
) -> Result<TicketCode> {
    let now_secs = (server_now_ms.max(0) / 1000) as u64;
    match status_of(ticket, &this_device_key(keystore)?, now_secs) {
        TicketStatus::Active => {}
        TicketStatus::Revoked => return Err(problem(TicketProblem::Revoked)),
        TicketStatus::Expired => return Err(problem(TicketProblem::Expired)),
        TicketStatus::OtherDevice => return Err(problem(TicketProblem::OtherDevice)),
        TicketStatus::NotYetValid => return Err(problem(TicketProblem::NotYetValid)),
    }
    let slot_ms = slot_seconds as i64 * 1000;
    let slot_start_ms = server_now_ms.max(0) / slot_ms * slot_ms;
    let slot_start = (slot_start_ms / 1000) as u64;
    let bytes = make_code(&ticket.statement, slot_start, &KeystoreSigner(keystore)).map_err(|e| match e {
        TicketError::Statement(StatementError::Signing(message)) => Error::Platform { service: "keystore", message },
        other => Error::BadData(format!("ticket code: {other}")),
    })?;
    let text = wire::code_text(&bytes);
    let qr = qr::encode(&text).map_err(|e| Error::BadData(format!("ticket QR: {e}")))?;
    let remaining_ms = slot_start_ms + slot_ms - server_now_ms.max(0);
    Ok(TicketCode {
        ticket_id: ticket.id.clone(),
        bytes,
        text,
        qr,
        slot_start,
        slot_seconds,
        seconds_remaining: ((remaining_ms + 999) / 1000).max(1) as u32,
    })
}

/// QR transit tickets for the rider.
#[derive(Clone)]
pub struct TicketsService {
    pub(crate) core: Core,
    pub(crate) slot_seconds: u32,
}

impl TicketsService {
    pub(crate) fn new(core: Core) -> TicketsService {
        TicketsService { core, slot_seconds: DEFAULT_SLOT_SECONDS }
    }

    /// The same service with another slot length (clamped to 5..=120 s); gates must agree.
    pub fn with_slot_seconds(mut self, seconds: u32) -> TicketsService {
        self.slot_seconds = seconds.clamp(MIN_SLOT_SECONDS, MAX_SLOT_SECONDS);
        self
    }

    pub fn slot_seconds(&self) -> u32 {
        self.slot_seconds
    }

    fn keystore(&self) -> Arc<dyn Keystore> {
        self.core.session().keystore.clone()
    }

    /// Server clock minus phone clock ([`Core::server_clock_offset_ms`]).
    pub fn clock_offset_ms(&self) -> Result<i64> {
        self.core.server_clock_offset_ms()
    }

    /// Now on the server's clock, in milliseconds.
    pub fn server_now_ms(&self) -> Result<i64> {
        Ok(crate::store::now_millis() + self.clock_offset_ms()?)
    }

    /// Buys a ticket: checked here (offline too), recorded, and queued in the outbox bound to
    /// this phone's device key; the server prices it (concessions from the verified identity),
    /// charges, and issues it. Returns the purchase id.
    pub fn buy(&self, product: Product, origin: Option<u64>, destination: Option<u64>) -> Result<String> {
        super::network::price(product, origin, destination, None)
            .map_err(|e| problem(TicketProblem::InvalidOrder(e)))?;
        let device_key = this_device_key(self.keystore().as_ref())?;
        let (id, _key) = self.core.store().write("buying a ticket", |tx| {
            super::commands::purchase(tx, product, origin, destination, &device_key)
        })?;
        self.core.outbox_wakeup();
        Ok(id)
    }

    /// The purchases made on this phone, newest first (their outbox state: `outbox(id)`).
    pub fn purchases(&self) -> Result<Vec<Purchase>> {
        store::purchases(self.core.store())
    }

    /// The outbox commands of a purchase (its state as the rider sees it, a refusal's reason).
    pub fn outbox(&self, purchase_id: &str) -> Result<Vec<crate::outbox::OutboxItem>> {
        crate::outbox::items(self.core.store(), Some(purchase_id))
    }

    /// The rider's tickets kept on this phone, with their status now.
    pub fn list(&self) -> Result<Vec<TicketSummary>> {
        let device = this_device_key(self.keystore().as_ref())?;
        let now_secs = (self.server_now_ms()?.max(0) / 1000) as u64;
        Ok(store::list(self.core.store())?.iter().map(|t| summary(t, &device, now_secs)).collect())
    }

    pub fn get(&self, ticket_id: &str) -> Result<TicketSummary> {
        let ticket = store::get(self.core.store(), ticket_id)?.ok_or(Error::NotFound { what: "ticket" })?;
        let device = this_device_key(self.keystore().as_ref())?;
        Ok(summary(&ticket, &device, (self.server_now_ms()?.max(0) / 1000) as u64))
    }

    /// The code to show at the gate now: works offline (ticket and key are on the phone).
    /// Call again when `seconds_remaining` runs out.
    pub fn current_code(&self, ticket_id: &str) -> Result<TicketCode> {
        self.current_code_at(ticket_id, crate::store::now_millis())
    }

    /// [`TicketsService::current_code`] at a given phone time (milliseconds), corrected by the
    /// server clock offset.
    pub fn current_code_at(&self, ticket_id: &str, phone_now_ms: i64) -> Result<TicketCode> {
        let ticket = store::get(self.core.store(), ticket_id)?.ok_or(Error::NotFound { what: "ticket" })?;
        code_at(&ticket, self.keystore().as_ref(), phone_now_ms + self.clock_offset_ms()?, self.slot_seconds)
    }
}

#[cfg(test)]
#[path = "phone_tests.rs"]
mod tests;
