//! QR transit tickets, the rider's side: buy (through the outbox, offline too), list, and the
//! rotating code to show at the gate (text, QR modules for drawing, PNG bytes, seconds left).
//! The gate's side is `gate.rs`.

use congdan_core::tickets::network::{self, LINE_1};
use congdan_core::tickets::store::{Purchase, PurchaseState};
use congdan_core::tickets::{Concession, Product, TicketStatus, TicketSummary, TicketsService};

use crate::drafts::OutboxEntry;
use crate::error::CongdanError;

/// A fare product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum TicketProduct {
    SingleJourney,
    DayPass,
    ThreeDayPass,
    MonthlyPass,
}

impl From<Product> for TicketProduct {
    fn from(p: Product) -> Self {
        match p {
            Product::SingleJourney => TicketProduct::SingleJourney,
            Product::DayPass => TicketProduct::DayPass,
            Product::ThreeDayPass => TicketProduct::ThreeDayPass,
            Product::MonthlyPass => TicketProduct::MonthlyPass,
        }
    }
}

impl From<TicketProduct> for Product {
    fn from(p: TicketProduct) -> Self {
        match p {
            TicketProduct::SingleJourney => Product::SingleJourney,
            TicketProduct::DayPass => Product::DayPass,
            TicketProduct::ThreeDayPass => Product::ThreeDayPass,
            TicketProduct::MonthlyPass => Product::MonthlyPass,
        }
    }
}

/// A reduced fare, decided by the server from the rider's verified identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum TicketConcession {
    Student,
    Elderly,
    Disability,
    ChildUnder6,
}

impl From<Concession> for TicketConcession {
    fn from(c: Concession) -> Self {
        match c {
            Concession::Student => TicketConcession::Student,
            Concession::Elderly => TicketConcession::Elderly,
            Concession::Disability => TicketConcession::Disability,
            Concession::ChildUnder6 => TicketConcession::ChildUnder6,
        }
    }
}

#[uniffi::remote(Enum)]
pub enum TicketStatus {
    Active,
    NotYetValid,
    Expired,
    Revoked,
    OtherDevice,
}

#[uniffi::remote(Enum)]
pub enum PurchaseState {
    Waiting,
    Issued,
    Refused,
}

/// A ticket kept on the phone.
#[derive(uniffi::Record)]
pub struct TicketInfo {
    /// Hex ticket id.
    pub id: String,
    pub product: TicketProduct,
    pub concession: Option<TicketConcession>,
    pub origin: Option<u64>,
    pub destination: Option<u64>,
    pub fare_vnd: u64,
    /// Unix seconds.
    pub valid_from: u64,
    pub valid_until: u64,
    pub status: TicketStatus,
    pub revoked_reason: Option<String>,
}

impl From<TicketSummary> for TicketInfo {
    fn from(t: TicketSummary) -> Self {
        TicketInfo {
            id: t.id,
            product: t.product.into(),
            concession: t.concession.map(Into::into),
            origin: t.origin,
            destination: t.destination,
            fare_vnd: t.fare_vnd,
            valid_from: t.valid_from,
            valid_until: t.valid_until,
            status: t.status,
            revoked_reason: t.revoked_reason,
        }
    }
}

/// A purchase made on this phone; its outbox command (state, a refusal's reason) comes from
/// `TicketsApi.outbox`.
#[derive(uniffi::Record)]
pub struct TicketPurchase {
    pub id: String,
    pub product: TicketProduct,
    pub origin: Option<u64>,
    pub destination: Option<u64>,
    pub state: PurchaseState,
    pub ticket_id: Option<String>,
    pub created_at_ms: i64,
}

impl From<Purchase> for TicketPurchase {
    fn from(p: Purchase) -> Self {
        TicketPurchase {
            id: p.id,
            product: p.product.into(),
            origin: p.origin,
            destination: p.destination,
            state: p.state,
            ticket_id: p.ticket_id,
            created_at_ms: p.created_at_ms,
        }
    }
}

/// The code to show now.
#[derive(uniffi::Record)]
pub struct TicketQrCode {
    pub ticket_id: String,
    /// The QR's text (base45), for shells that draw with their own QR library.
    pub text: String,
    /// Modules per side (no quiet zone: leave 4 light modules around).
    pub size: u32,
    /// `rows[y][x]`, true for dark.
    pub rows: Vec<Vec<bool>>,
    /// The same code as a PNG (8 pixels per module, quiet zone included).
    pub png: Vec<u8>,
    /// Start of the code's time slot, unix seconds on the server's clock.
    pub slot_start: u64,
    pub slot_seconds: u32,
    /// Ask for a new code after this many seconds.
    pub seconds_remaining: u32,
}

/// A station of Metro Line 1.
#[derive(uniffi::Record)]
pub struct MetroStation {
    pub id: u64,
    pub name_vi: String,
    pub name_en: String,
    /// Distance from Bến Thành, in metres.
    pub position_m: u32,
}

#[derive(uniffi::Object)]
pub struct TicketsApi {
    pub(crate) inner: TicketsService,
}

#[uniffi::export]
impl TicketsApi {
    /// Buys a ticket (stations only for a single journey): checked at once, queued in the
    /// outbox, sent now or when the network is back. Returns the purchase id.
    pub fn buy(&self, product: TicketProduct, origin: Option<u64>, destination: Option<u64>) -> Result<String, CongdanError> {
        Ok(self.inner.buy(product.into(), origin, destination)?)
    }

    /// The full fare (before any concession, which the server applies) of a product.
    pub fn full_fare(&self, product: TicketProduct, origin: Option<u64>, destination: Option<u64>) -> Result<u64, CongdanError> {
        network::price(product.into(), origin, destination, None).map_err(|e| {
            congdan_core::Error::Ticket { problem: congdan_core::tickets::TicketProblem::InvalidOrder(e) }.into()
        })
    }

    pub fn stations(&self) -> Vec<MetroStation> {
        LINE_1
            .iter()
            .map(|s| MetroStation {
                id: s.id,
                name_vi: s.name_vi.into(),
                name_en: s.name_en.into(),
                position_m: s.position_m,
            })
            .collect()
    }

    /// The rider's tickets on this phone, with their status now.
    pub fn list(&self) -> Result<Vec<TicketInfo>, CongdanError> {
        Ok(self.inner.list()?.into_iter().map(Into::into).collect())
    }

    pub fn get(&self, ticket_id: String) -> Result<TicketInfo, CongdanError> {
        Ok(self.inner.get(&ticket_id)?.into())
    }

    pub fn purchases(&self) -> Result<Vec<TicketPurchase>, CongdanError> {
        Ok(self.inner.purchases()?.into_iter().map(Into::into).collect())
    }

    /// The outbox commands of a purchase (waiting, sending, sent, rejected with the reason).
    pub fn outbox(&self, purchase_id: String) -> Result<Vec<OutboxEntry>, CongdanError> {
        Ok(self.inner.outbox(&purchase_id)?.into_iter().map(OutboxEntry::from).collect())
    }

    /// The code to show at the gate now (works offline). Call again after `seconds_remaining`.
    pub fn current_code(&self, ticket_id: String) -> Result<TicketQrCode, CongdanError> {
        let code = self.inner.current_code(&ticket_id)?;
        let png = code.qr.to_png(8).map_err(|e| congdan_core::Error::BadData(e.to_string()))?;
        Ok(TicketQrCode {
            ticket_id: code.ticket_id,
            text: code.text,
            size: code.qr.size as u32,
            rows: code.qr.rows,
            png,
            slot_start: code.slot_start,
            slot_seconds: code.slot_seconds,
            seconds_remaining: code.seconds_remaining,
        })
    }
}
