//! QR transit tickets (issue 5): the wire format shared by phone, server and gate, the network
//! and its fares, and the rider's side on the phone.
//!
//! - [`wire`]: ticket statement (operator-signed), rotating proof (device-signed), the code shown
//!   at the gate; `docs/ticket-format.md` has the bytes and test vectors.
//! - [`base45`]: the code's QR text (alphanumeric mode).
//! - [`network`]: Metro Line 1 stations and fares, for server pricing and gate checks.
//! - [`qr`]: the code drawn as a QR symbol (matrix, SVG, PNG).
//! - the rider's phone: [`TicketsService`] (`Core::tickets()`), with [`store`] (tickets kept
//!   offline), [`commands`] (`ticket.purchase` in the one outbox) and [`changes`]
//!   (`ticket.issued`, `ticket.revoked` from the account feed).

pub mod base45;
pub mod changes;
pub mod commands;
pub mod gate;
pub mod network;
pub(crate) mod phone;
pub mod qr;
pub mod store;
pub mod wire;

pub use wire::{
    code_text, compress_device_key, decompress_device_key, make_code, parse_code, parse_code_text,
    read_ticket_unverified, ticket_id, verify_code, verify_ticket, Concession, ParsedCode, Product, Ticket,
    TicketError, VerifiedCode, VerifiedTicket, CODE_VERSION, MAX_CODE_LEN, PROOF_TYPE, REVOCATION_LIST_TYPE,
    TICKET_ID_LEN, TICKET_TYPE,
};
pub use phone::{
    code_at, status_of, TicketCode, TicketProblem, TicketStatus, TicketSummary, TicketsService, DEFAULT_SLOT_SECONDS,
};

#[cfg(test)]
mod format_doc_tests;
#[cfg(test)]
mod fuzz_tests;
