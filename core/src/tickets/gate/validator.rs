//! The decision about one code, in memory. Checks run in a fixed order so a code always gets
//! the same reason: structure, operator key, operator signature, device proof, revocation,
//! validity, freshness, product rules, pass-back. Signatures come first because nothing in a
//! code is read as true before its signature verifies; the cheap rules after them cost a few
//! hundred nanoseconds next to the two signature checks.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, RwLock};

use crate::crypto::{self, StatementError};
use crate::tickets::network;
use crate::tickets::wire::{self, Concession, ParsedCode, Product, TicketError, PROOF_KEY_ID, PROOF_SCHEMA};

use super::decision::{Accepted, Decision, Refusal, RefusalReason};
use super::keys::OperatorKeys;
use super::revocation::{RevocationError, RevocationList};
use super::state::{GateState, StateRefusal, Tap};
use super::{Direction, GateConfig};

/// A gate's decision maker: config, trusted operator keys, revocation list, pass-back state.
/// Shared between threads (the scanner, the peer receiver, the server link): every method
/// takes `&self`.
pub struct GateValidator {
    config: GateConfig,
    keys: RwLock<OperatorKeys>,
    revocations: RwLock<RevocationList>,
    state: Mutex<GateState>,
    /// This gate's clock minus the server's, in seconds, learned by the server link; taken
    /// off the gate's clock before any time rule.
    clock_offset_s: AtomicI64,
}

impl std::fmt::Debug for GateValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateValidator").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The refusal a ticket error stands for, by the step that produced it.
fn ticket_refusal(e: &TicketError) -> RefusalReason {
    match e {
        TicketError::Statement(StatementError::UnknownKey) | TicketError::WrongKey(_) => RefusalReason::UnknownKey,
        TicketError::Statement(StatementError::BadSignature) => RefusalReason::Forged,
        _ => RefusalReason::Malformed,
    }
}

impl GateValidator {
    pub fn new(config: GateConfig, keys: OperatorKeys, revocations: RevocationList) -> GateValidator {
        GateValidator {
            config,
            keys: RwLock::new(keys),
            revocations: RwLock::new(revocations),
            state: Mutex::new(GateState::default()),
            clock_offset_s: AtomicI64::new(0),
        }
    }

    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    /// Replaces the trusted operator keys (pulled from the server, or given as a file).
    pub fn set_keys(&self, keys: OperatorKeys) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    pub fn keys(&self) -> OperatorKeys {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Verifies a signed revocation list with the trusted operator keys at `now` and takes it,
    /// unless it is older than the one held. Returns the number of revoked ids.
    pub fn update_revocations(&self, statement: &[u8], now: u64) -> Result<usize, RevocationError> {
        let list = {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            RevocationList::verify(statement, &keys.at(self.true_time(now)))?
        };
        self.set_revocations(list)
    }

    /// Takes an already verified (or locally made) list, unless it is older than the one held.
    pub fn set_revocations(&self, list: RevocationList) -> Result<usize, RevocationError> {
        let mut held = self.revocations.write().unwrap_or_else(|p| p.into_inner());
        held.check_newer(&list)?;
        let n = list.len();
        *held = list;
        Ok(n)
    }

    /// (sequence, number of ids) of the revocation list held.
    pub fn revocation_status(&self) -> (u64, usize) {
        let held = self.revocations.read().unwrap_or_else(|p| p.into_inner());
        (held.sequence, held.len())
    }

    /// This gate's clock minus the server's (seconds).
    pub fn set_clock_offset(&self, offset_s: i64) {
        self.clock_offset_s.store(offset_s, Ordering::Relaxed);
    }

    pub fn clock_offset(&self) -> i64 {
        self.clock_offset_s.load(Ordering::Relaxed)
    }

    fn true_time(&self, gate_now: u64) -> u64 {
        gate_now.saturating_add_signed(-self.clock_offset())
    }

    /// Decides about a code given as QR text (base45). `now`: this gate's clock, unix seconds.
    pub fn validate_text(&self, text: &str, now: u64) -> Decision {
        match wire::parse_code_text(text.trim()) {
            Ok(parsed) => self.validate_parsed(&parsed, now),
            Err(_) => Decision::refuse(RefusalReason::Malformed, None),
        }
    }

    /// Decides about a code given as bytes; an accepted code is recorded for pass-back.
    pub fn validate(&self, code: &[u8], now: u64) -> Decision {
        match wire::parse_code(code) {
            Ok(parsed) => self.validate_parsed(&parsed, now),
            Err(_) => Decision::refuse(RefusalReason::Malformed, None),
        }
    }

    fn validate_parsed(&self, parsed: &ParsedCode, gate_now: u64) -> Decision {
        let now = self.true_time(gate_now);
        // 1. The operator's signature over the ticket, with a key in force now.
        let verified = {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            match wire::verify_ticket(&parsed.ticket_bytes, &keys.at(now)) {
                Ok(v) => v,
                Err(e) => {
                    let reason = match ticket_refusal(&e) {
                        RefusalReason::Forged => bad_ticket_refusal(parsed),
                        other => other,
                    };
                    return Decision::refuse(reason, None);
                }
            }
        };
        let id = verified.id;
        // 2. The rotating proof, by the device key the operator bound into the ticket.
        if !proof_verifies(&id, &verified.ticket.device_key, parsed) {
            return Decision::refuse(proof_refusal(parsed), Some(id));
        }
        // 3. Revocation.
        if self.revocations.read().unwrap_or_else(|p| p.into_inner()).contains(&id) {
            return Decision::refuse(RefusalReason::Revoked, Some(id));
        }
        let ticket = &verified.ticket;
        let direction = self.config.direction;
        // 4. Validity; an exit may come after it, within the grace (the rider entered in time).
        if now < ticket.valid_from {
            return Decision::refuse(RefusalReason::NotYetValid, Some(id));
        }
        let last_moment = match direction {
            Direction::Entry => ticket.valid_until,
            Direction::Exit => ticket.valid_until.saturating_add(self.config.exit_grace_s),
        };
        if now > last_moment {
            return Decision::refuse(RefusalReason::Expired, Some(id));
        }
        // 5. Freshness of the proof's slot.
        let clock_skew_s = match self.freshness(parsed.slot_start, now) {
            Ok(skew) => skew,
            Err(refusal) => return Decision::Refuse(Refusal { ticket_id: Some(id), ..refusal }),
        };
        // 6. Product rules.
        let consumed = match self.product_rules(ticket.product, ticket.origin, ticket.destination, ticket.fare_vnd, ticket.concession) {
            Ok(consumed) => consumed,
            Err(reason) => return Decision::refuse(reason, Some(id)),
        };
        // 7. Pass-back and consumed single journeys: check and record under one lock, so the
        // same code scanned twice at once is accepted once.
        let tap = Tap {
            ticket_id: id,
            direction,
            at: gate_now,
            slot_start: parsed.slot_start,
            consumed_until: consumed.then(|| ticket.valid_until.saturating_add(self.config.exit_grace_s)),
        };
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(refusal) = state.check(&id, direction, gate_now, self.config.pass_back_window_s) {
                let reason = match refusal {
                    StateRefusal::PassBack => RefusalReason::PassBack,
                    StateRefusal::AlreadyUsed => RefusalReason::AlreadyUsed,
                };
                return Decision::refuse(reason, Some(id));
            }
            state.record(&tap, gate_now, self.config.pass_back_window_s);
        }
        Decision::Accept(Accepted {
            ticket_id: id,
            product: ticket.product.code(),
            concession: ticket.concession.map(Concession::code),
            direction,
            remaining_s: ticket.valid_until.saturating_sub(now),
            consumed_until: tap.consumed_until,
            slot_start: parsed.slot_start,
            clock_skew_s,
        })
    }

    /// A code is fresh from its slot start until the slot's end plus the tolerance. A slot
    /// in the future means the phone's clock is ahead: tolerated (and reported) up to the
    /// clock window, refused as clock skew beyond it.
    fn freshness(&self, slot_start: u64, now: u64) -> Result<Option<i64>, Refusal> {
        let c = &self.config;
        let age = now as i128 - slot_start as i128;
        if age > (c.slot_length_s + c.slot_tolerance_s) as i128 {
            return Err(Refusal { reason: RefusalReason::StaleCode, ticket_id: None, clock_skew_s: None });
        }
        if age >= -(c.slot_tolerance_s as i128) {
            return Ok(None);
        }
        let ahead = (-age).min(i64::MAX as i128) as i64;
        if ahead as u64 > c.clock_window_s {
            return Err(Refusal { reason: RefusalReason::ClockSkew, ticket_id: None, clock_skew_s: Some(ahead) });
        }
        Ok(Some(ahead))
    }

    /// Passes go anywhere on the line. A single journey enters inside its paid stretch and is
    /// consumed at the exit, where its fare must cover the trip from its origin. Returns
    /// whether the tap consumes the ticket.
    fn product_rules(
        &self,
        product: Product,
        origin: Option<u64>,
        destination: Option<u64>,
        fare_vnd: u64,
        concession: Option<Concession>,
    ) -> Result<bool, RefusalReason> {
        let station = self.config.station_id;
        if product != Product::SingleJourney {
            return Ok(false);
        }
        let (Some(origin), Some(destination)) = (origin, destination) else {
            return Err(RefusalReason::Malformed);
        };
        match self.config.direction {
            Direction::Entry => {
                if network::covers(origin, destination, station, station) {
                    Ok(false)
                } else {
                    Err(RefusalReason::WrongStation)
                }
            }
            Direction::Exit => {
                if station == origin {
                    return Ok(true);
                }
                // A station not on the network means this gate is misconfigured for the ticket.
                let needed = network::single_fare(origin, station, concession).map_err(|_| RefusalReason::WrongStation)?;
                if needed > fare_vnd {
                    Err(RefusalReason::FareTooLow)
                } else {
                    Ok(true)
                }
            }
        }
    }

    /// Records a tap this gate did not decide itself: a peer gate's, or one replayed from the
    /// tap log at start. `now`: this gate's clock.
    pub fn record_tap(&self, tap: &Tap, now: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_sub(tap.at) < self.config.pass_back_window_s || tap.consumed_until.is_some_and(|u| u >= now) {
            state.record(tap, now, self.config.pass_back_window_s);
        }
    }

    /// Tickets and consumptions held in memory (bounded by the pass-back window).
    pub fn remembered(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).remembered()
    }
}

/// Verifies the rotating proof with the ticket's device key, through the one `crypto::verify`
/// (the code carries the proof compactly; its envelope is rebuilt here).
fn proof_verifies(ticket_id: &[u8; 16], device_key: &[u8], parsed: &ParsedCode) -> bool {
    let Ok(device_key) = wire::decompress_device_key(device_key) else { return false };
    let statement = wire::proof_statement(ticket_id, parsed.slot_start, &parsed.proof_signature);
    crypto::verify(&PROOF_SCHEMA, &statement, &DeviceKey(device_key)).is_ok()
}

/// The ticket's device key as the only key a proof may name (under the implied key id).
struct DeviceKey(crypto::PublicKey);

impl crypto::KeySet for DeviceKey {
    fn key(&self, algorithm: crypto::Algorithm, key_id: &[u8]) -> Option<crypto::PublicKey> {
        (algorithm == self.0.algorithm && key_id == PROOF_KEY_ID).then(|| self.0.clone())
    }
}

/// Why the proof of a genuine ticket fails. The code (version 1, at its 200-byte limit)
/// carries no hint of which key signed the proof, so the gate tells the two cases apart by
/// what the signature is: a well-formed ECDSA signature (r and s in range, r the x-coordinate
/// of a curve point) is a signature by some key, only not by this ticket's device key: the
/// ticket was copied to another phone. A signature that no key could have made means its
/// bytes were changed.
fn proof_refusal(parsed: &ParsedCode) -> RefusalReason {
    if could_be_p256_signature(&parsed.proof_signature) {
        RefusalReason::WrongDevice
    } else {
        RefusalReason::Tampered
    }
}

/// The order of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn could_be_p256_signature(signature: &[u8; 64]) -> bool {
    let (r, s) = signature.split_at(32);
    let in_range = |v: &[u8]| v.iter().any(|b| *b != 0) && v < &P256_ORDER[..];
    if !in_range(r) || !in_range(s) {
        return false;
    }
    // r = x(kG) mod n; x ≥ n happens with probability about 2^-128, so r itself must be the
    // x-coordinate of a point (either y will do).
    let mut point = [0u8; 33];
    point[0] = 0x02;
    point[1..].copy_from_slice(r);
    wire::decompress_device_key(&point).is_ok()
}

/// Why a ticket whose operator signature fails is refused: if the rest of the code is
/// consistent with it (the proof verifies with the device key the ticket claims), someone made
/// a ticket of their own: forged. If not, a genuine code had bytes changed: tampered. The
/// unverified device key only chooses between two refusals; it never admits anyone.
fn bad_ticket_refusal(parsed: &ParsedCode) -> RefusalReason {
    match wire::read_ticket_unverified(&parsed.ticket_bytes) {
        Ok(claimed) if proof_verifies(&parsed.ticket_id(), &claimed.device_key, parsed) => RefusalReason::Forged,
        _ => RefusalReason::Tampered,
    }
}
