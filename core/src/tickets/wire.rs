//! The ticket wire format: the operator-signed ticket (statement type `0x20`), the rotating proof
//! signed by the phone's device key (type `0x21`), and the code shown at the gate (container
//! version byte, ticket, compact proof). Both parts are signed statements of the one format
//! (`crate::crypto`); byte layout and test vectors: `docs/ticket-format.md`.
//!
//! Sizes are bounded so that every code, for every product, fits 200 bytes ([`MAX_CODE_LEN`]):
//! the operator key id is 1–2 bytes, validity is carried in whole minutes, station ids are one
//! byte, the proof's envelope and key id are implied by the ticket and rebuilt by the verifier.
//!
//! Who checks what: [`verify_ticket`] and [`verify_code`] check signatures and the ticket's own
//! consistency only. Time (validity window, slot freshness), revocation, pass-back and the
//! station a single journey may enter are the gate's policy (`tickets::gate`).

use ring::digest::{digest, SHA256};

use crate::crypto::{
    self, read_varint, write_varint, Algorithm, FieldKind, FieldSpec, FieldValue, Fields, KeySet, PublicKey,
    Schema, Signer, StatementError, MAGIC, SIGNATURE_LEN, VERSION,
};

/// Statement type of a ticket (signed by the operator, Ed25519).
pub const TICKET_TYPE: u8 = 0x20;
/// Statement type of a rotating proof (signed by the device key, P-256).
pub const PROOF_TYPE: u8 = 0x21;
/// Statement type of the operator's signed revocation list (list sequence, issued at, ids).
pub const REVOCATION_LIST_TYPE: u8 = 0x22;
/// First byte of a code; a future layout gets another number.
pub const CODE_VERSION: u8 = 0x01;
/// The implied key id of a proof: "the device key named in the ticket". It is not carried in
/// the code; signer and verifier both put it in the proof's envelope.
pub const PROOF_KEY_ID: &[u8] = b"d";
/// Every code fits this many bytes (300 base45 characters, QR version 10-M).
pub const MAX_CODE_LEN: usize = 200;
/// Operator key ids are short names such as `"1"` to keep codes small.
pub const MAX_OPERATOR_KEY_ID_LEN: usize = 2;
/// Bytes in a ticket id.
pub const TICKET_ID_LEN: usize = 16;
/// Highest fare a ticket can carry (a 3-byte varint); far above any real price.
pub const MAX_FARE_VND: u64 = (1 << 21) - 1;
/// Station ids fit one varint byte.
pub const MAX_STATION_ID: u64 = 127;
/// Validity instants are whole minutes below 2^28 minutes after the epoch (year 2480): a
/// 4-byte varint.
pub const MAX_TIME: u64 = ((1 << 28) - 1) * 60;
/// Slot starts are seconds below 2^35 (a 5-byte varint).
pub const MAX_SLOT_START: u64 = (1 << 35) - 1;
/// A compressed SEC1 P-256 point.
pub const DEVICE_KEY_LEN: usize = 33;

/// Tags of the ticket's fields (increasing, as the encoding requires).
mod tag {
    pub const PRODUCT: u8 = 1;
    pub const CONCESSION: u8 = 2;
    pub const ORIGIN: u8 = 3;
    pub const DESTINATION: u8 = 4;
    pub const FARE_VND: u8 = 5;
    pub const VALID_FROM_MINUTE: u8 = 6;
    pub const VALID_UNTIL_MINUTE: u8 = 7;
    pub const DEVICE_KEY: u8 = 8;
    pub const PROOF_TICKET_ID: u8 = 1;
    pub const PROOF_SLOT_START: u8 = 2;
}

pub const TICKET_SCHEMA: Schema = Schema {
    statement_type: TICKET_TYPE,
    name: "ticket",
    fields: &[
        FieldSpec { tag: tag::PRODUCT, name: "product", kind: FieldKind::U64, required: true },
        FieldSpec { tag: tag::CONCESSION, name: "concession", kind: FieldKind::U64, required: false },
        FieldSpec { tag: tag::ORIGIN, name: "origin", kind: FieldKind::U64, required: false },
        FieldSpec { tag: tag::DESTINATION, name: "destination", kind: FieldKind::U64, required: false },
        FieldSpec { tag: tag::FARE_VND, name: "fare_vnd", kind: FieldKind::U64, required: true },
        FieldSpec { tag: tag::VALID_FROM_MINUTE, name: "valid_from_minute", kind: FieldKind::U64, required: true },
        FieldSpec { tag: tag::VALID_UNTIL_MINUTE, name: "valid_until_minute", kind: FieldKind::U64, required: true },
        FieldSpec { tag: tag::DEVICE_KEY, name: "device_key", kind: FieldKind::Bytes, required: true },
    ],
};

pub const PROOF_SCHEMA: Schema = Schema {
    statement_type: PROOF_TYPE,
    name: "ticket proof",
    fields: &[
        FieldSpec { tag: tag::PROOF_TICKET_ID, name: "ticket_id", kind: FieldKind::Bytes, required: true },
        FieldSpec { tag: tag::PROOF_SLOT_START, name: "slot_start", kind: FieldKind::U64, required: true },
    ],
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// The envelope, a signature or the canonical encoding of one of the two statements.
    #[error("signed statement: {0}")]
    Statement(#[from] StatementError),
    #[error("ticket field {0} is out of range or inconsistent")]
    InvalidField(&'static str),
    #[error("ticket code is truncated, too long or malformed")]
    MalformedCode,
    #[error("unsupported ticket code version {0}")]
    UnsupportedCodeVersion(u8),
    #[error("the device key in the ticket is not a P-256 point")]
    BadDeviceKey,
    #[error("the rotating proof does not verify with the ticket's device key")]
    BadProof,
    #[error("ticket text is not base45: {0}")]
    BadText(#[from] super::base45::Base45Error),
    #[error("unknown product {0}")]
    UnknownProduct(u64),
    #[error("unknown concession {0}")]
    UnknownConcession(u64),
    #[error("unknown station {0}")]
    UnknownStation(u64),
    #[error("origin and destination are the same station")]
    SameStation,
    #[error("a single journey needs an origin and a destination")]
    StationsRequired,
    #[error("only a single journey has an origin and a destination")]
    StationsNotAllowed,
    #[error("wrong key for this statement: {0}")]
    WrongKey(&'static str),
}

impl TicketError {
    /// What a rider or gate attendant reads: Vietnamese first, then English.
    pub fn user_message(&self) -> &'static str {
        match self {
            TicketError::UnknownStation(_) | TicketError::SameStation => {
                "Ga không hợp lệ. / Invalid station."
            }
            TicketError::StationsRequired => {
                "Vé lượt cần ga đi và ga đến. / A single journey needs an origin and a destination."
            }
            TicketError::StationsNotAllowed => {
                "Vé ngày/tháng không có ga đi, ga đến. / Passes have no origin or destination."
            }
            TicketError::UnknownProduct(_) | TicketError::UnknownConcession(_) => {
                "Loại vé không hợp lệ. / Unknown ticket type."
            }
            _ => "Mã vé không hợp lệ. / Invalid ticket code.",
        }
    }
}

/// The fare products. The numbers are signed into tickets: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Product {
    SingleJourney = 1,
    DayPass = 2,
    ThreeDayPass = 3,
    MonthlyPass = 4,
}

impl Product {
    pub const ALL: [Product; 4] =
        [Product::SingleJourney, Product::DayPass, Product::ThreeDayPass, Product::MonthlyPass];

    pub fn code(self) -> u64 {
        self as u64
    }

    pub fn from_code(code: u64) -> Result<Product, TicketError> {
        Product::ALL.into_iter().find(|p| p.code() == code).ok_or(TicketError::UnknownProduct(code))
    }

    /// The name used in the API and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Product::SingleJourney => "single",
            Product::DayPass => "day",
            Product::ThreeDayPass => "three-day",
            Product::MonthlyPass => "monthly",
        }
    }

    pub fn from_name(name: &str) -> Option<Product> {
        Product::ALL.into_iter().find(|p| p.name() == name)
    }

    /// How long a ticket of this product is valid from its purchase: a single journey and a
    /// day pass 24 hours, a three-day pass 72 hours, a monthly pass 30 days.
    pub fn validity_seconds(self) -> u64 {
        match self {
            Product::SingleJourney | Product::DayPass => 24 * 3600,
            Product::ThreeDayPass => 3 * 24 * 3600,
            Product::MonthlyPass => 30 * 24 * 3600,
        }
    }
}

/// Reduced fares, from the rider's verified identity (never from what the phone says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Concession {
    /// Half price.
    Student = 1,
    /// 60 and older: free.
    Elderly = 2,
    /// Free.
    Disability = 3,
    /// Children under 6: free.
    ChildUnder6 = 4,
}

impl Concession {
    pub const ALL: [Concession; 4] =
        [Concession::Student, Concession::Elderly, Concession::Disability, Concession::ChildUnder6];

    pub fn code(self) -> u64 {
        self as u64
    }

    pub fn from_code(code: u64) -> Result<Concession, TicketError> {
        Concession::ALL.into_iter().find(|c| c.code() == code).ok_or(TicketError::UnknownConcession(code))
    }

    pub fn name(self) -> &'static str {
        match self {
            Concession::Student => "student",
            Concession::Elderly => "elderly",
            Concession::Disability => "disability",
            Concession::ChildUnder6 => "child-under-6",
        }
    }
}

/// What a ticket says. It has no serial: its id is derived from its signed bytes ([`ticket_id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub product: Product,
    /// `None`: full fare.
    pub concession: Option<Concession>,
    /// Station ids (`tickets::network`), for a single journey only.
    pub origin: Option<u64>,
    pub destination: Option<u64>,
    pub fare_vnd: u64,
    /// Unix seconds, a whole minute.
    pub valid_from: u64,
    /// Unix seconds, a whole minute, after `valid_from`.
    pub valid_until: u64,
    /// The phone's device key, compressed SEC1 P-256 (33 bytes, `02`/`03` ‖ x).
    pub device_key: Vec<u8>,
}

impl Ticket {
    /// The ticket's own consistency, checked before signing and after verifying.
    pub fn check(&self) -> Result<(), TicketError> {
        match (self.product, self.origin, self.destination) {
            (Product::SingleJourney, Some(o), Some(d)) => {
                for s in [o, d] {
                    if s == 0 || s > MAX_STATION_ID {
                        return Err(TicketError::UnknownStation(s));
                    }
                }
                if o == d {
                    return Err(TicketError::SameStation);
                }
            }
            (Product::SingleJourney, _, _) => return Err(TicketError::StationsRequired),
            (_, None, None) => {}
            _ => return Err(TicketError::StationsNotAllowed),
        }
        if self.fare_vnd > MAX_FARE_VND {
            return Err(TicketError::InvalidField("fare_vnd"));
        }
        for (t, name) in [(self.valid_from, "valid_from"), (self.valid_until, "valid_until")] {
            if t % 60 != 0 || t > MAX_TIME {
                return Err(TicketError::InvalidField(name));
            }
        }
        if self.valid_until <= self.valid_from {
            return Err(TicketError::InvalidField("valid_until"));
        }
        if self.device_key.len() != DEVICE_KEY_LEN || !matches!(self.device_key[0], 2 | 3) {
            return Err(TicketError::BadDeviceKey);
        }
        Ok(())
    }

    fn to_fields(&self) -> Fields {
        let mut fields = Fields::new();
        fields.insert(tag::PRODUCT, FieldValue::U64(self.product.code()));
        if let Some(c) = self.concession {
            fields.insert(tag::CONCESSION, FieldValue::U64(c.code()));
        }
        if let Some(o) = self.origin {
            fields.insert(tag::ORIGIN, FieldValue::U64(o));
        }
        if let Some(d) = self.destination {
            fields.insert(tag::DESTINATION, FieldValue::U64(d));
        }
        fields.insert(tag::FARE_VND, FieldValue::U64(self.fare_vnd));
        fields.insert(tag::VALID_FROM_MINUTE, FieldValue::U64(self.valid_from / 60));
        fields.insert(tag::VALID_UNTIL_MINUTE, FieldValue::U64(self.valid_until / 60));
        fields.insert(tag::DEVICE_KEY, FieldValue::Bytes(self.device_key.clone()));
        fields
    }

    fn from_fields(fields: &Fields) -> Result<Ticket, TicketError> {
        let u64_of = |t: u8| fields.get(&t).and_then(FieldValue::as_u64);
        let required = |t: u8, name: &'static str| u64_of(t).ok_or(TicketError::InvalidField(name));
        let minutes = |t: u8, name: &'static str| -> Result<u64, TicketError> {
            let m = required(t, name)?;
            if m > MAX_TIME / 60 {
                return Err(TicketError::InvalidField(name));
            }
            Ok(m * 60)
        };
        let device_key = fields
            .get(&tag::DEVICE_KEY)
            .and_then(FieldValue::as_bytes)
            .ok_or(TicketError::InvalidField("device_key"))?
            .to_vec();
        let ticket = Ticket {
            product: Product::from_code(required(tag::PRODUCT, "product")?)?,
            concession: u64_of(tag::CONCESSION).map(Concession::from_code).transpose()?,
            origin: u64_of(tag::ORIGIN),
            destination: u64_of(tag::DESTINATION),
            fare_vnd: required(tag::FARE_VND, "fare_vnd")?,
            valid_from: minutes(tag::VALID_FROM_MINUTE, "valid_from")?,
            valid_until: minutes(tag::VALID_UNTIL_MINUTE, "valid_until")?,
            device_key,
        };
        ticket.check()?;
        Ok(ticket)
    }

    /// Signs the ticket with the operator's Ed25519 key (key id 1–2 bytes): the ticket statement.
    pub fn sign(&self, operator: &dyn Signer) -> Result<Vec<u8>, TicketError> {
        if operator.algorithm() != Algorithm::Ed25519 {
            return Err(TicketError::WrongKey("tickets are signed with an Ed25519 operator key"));
        }
        if operator.key_id().len() > MAX_OPERATOR_KEY_ID_LEN {
            return Err(TicketError::WrongKey("operator key ids are 1 or 2 bytes"));
        }
        self.check()?;
        Ok(crypto::sign(&TICKET_SCHEMA, &self.to_fields(), operator)?)
    }
}

/// A ticket whose operator signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTicket {
    pub id: [u8; TICKET_ID_LEN],
    /// The operator key that signed it.
    pub key_id: Vec<u8>,
    pub ticket: Ticket,
    /// The ticket statement as received.
    pub bytes: Vec<u8>,
}

/// The ticket id: the first 16 bytes of SHA-256 over the signed bytes (everything before the
/// signature). Keyed on the signed bytes, not the whole statement, because a signature can be
/// altered without the key (see docs/signed-statements.md).
pub fn ticket_id(ticket_bytes: &[u8]) -> [u8; TICKET_ID_LEN] {
    let signed = &ticket_bytes[..ticket_bytes.len().saturating_sub(SIGNATURE_LEN)];
    let hash = digest(&SHA256, signed);
    let mut id = [0u8; TICKET_ID_LEN];
    id.copy_from_slice(&hash.as_ref()[..TICKET_ID_LEN]);
    id
}

/// Verifies a ticket statement against the operator's keys, then reads and checks its fields.
pub fn verify_ticket(bytes: &[u8], operator_keys: &dyn KeySet) -> Result<VerifiedTicket, TicketError> {
    let verified = crypto::verify(&TICKET_SCHEMA, bytes, operator_keys)?;
    if verified.algorithm != Algorithm::Ed25519 {
        return Err(TicketError::WrongKey("a ticket must be signed by an Ed25519 operator key"));
    }
    let ticket = Ticket::from_fields(&verified.fields)?;
    Ok(VerifiedTicket { id: ticket_id(bytes), key_id: verified.key_id, ticket, bytes: bytes.to_vec() })
}

/// Reads a ticket's fields WITHOUT checking its signature: for the phone, which received it from
/// its own server over TLS and has no operator keys. Never use this to admit anyone.
pub fn read_ticket_unverified(bytes: &[u8]) -> Result<Ticket, TicketError> {
    let len = statement_len(bytes, 0)?;
    if len != bytes.len() || bytes[3] != TICKET_TYPE {
        return Err(TicketError::MalformedCode);
    }
    let key_id_len = bytes[5] as usize;
    let mut pos = 6 + key_id_len;
    let body_len = read_varint(bytes, &mut pos)? as usize;
    let fields = crypto::decode_fields(&bytes[pos..pos + body_len], &TICKET_SCHEMA)?;
    TICKET_SCHEMA.check(&fields)?;
    Ticket::from_fields(&fields)
}

/// The length of the signed statement starting at `start` (envelope only; nothing verified).
fn statement_len(bytes: &[u8], start: usize) -> Result<usize, TicketError> {
    let header = bytes.get(start..start + 6).ok_or(TicketError::MalformedCode)?;
    if header[..2] != MAGIC {
        return Err(TicketError::MalformedCode);
    }
    let key_id_len = header[5] as usize;
    if key_id_len == 0 || key_id_len > crypto::MAX_KEY_ID_LEN {
        return Err(TicketError::MalformedCode);
    }
    let mut pos = start + 6 + key_id_len;
    if pos > bytes.len() {
        return Err(TicketError::MalformedCode);
    }
    let body_len = read_varint(bytes, &mut pos).map_err(|_| TicketError::MalformedCode)? as usize;
    let end = pos
        .checked_add(body_len)
        .and_then(|e| e.checked_add(SIGNATURE_LEN))
        .ok_or(TicketError::MalformedCode)?;
    if end > bytes.len() {
        return Err(TicketError::MalformedCode);
    }
    Ok(end - start)
}

/// A code taken apart, nothing trusted yet: [`verify_code`] checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCode {
    /// The ticket statement, unverified.
    pub ticket_bytes: Vec<u8>,
    /// Start of the time slot the proof was made for (unix seconds), unverified.
    pub slot_start: u64,
    /// The proof's P-256 signature, `r ‖ s`.
    pub proof_signature: [u8; SIGNATURE_LEN],
}

impl ParsedCode {
    /// The id of the ticket inside (not yet verified: fine for a revocation lookup, not to admit).
    pub fn ticket_id(&self) -> [u8; TICKET_ID_LEN] {
        ticket_id(&self.ticket_bytes)
    }
}

/// The proof statement's signed bytes: envelope with the implied key id, then the ticket id and
/// the slot start. Signer and verifier build it the same way.
fn proof_signed_bytes(ticket_id: &[u8; TICKET_ID_LEN], slot_start: u64) -> Vec<u8> {
    let mut fields = Vec::with_capacity(24);
    fields.push(tag::PROOF_TICKET_ID);
    write_varint(&mut fields, TICKET_ID_LEN as u64);
    fields.extend_from_slice(ticket_id);
    fields.push(tag::PROOF_SLOT_START);
    write_varint(&mut fields, slot_start);
    let mut out = Vec::with_capacity(8 + fields.len() + SIGNATURE_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, PROOF_TYPE, Algorithm::EcdsaP256Sha256 as u8, PROOF_KEY_ID.len() as u8]);
    out.extend_from_slice(PROOF_KEY_ID);
    write_varint(&mut out, fields.len() as u64);
    out.extend_from_slice(&fields);
    out
}

/// The full proof statement (what `crypto::verify` checks) rebuilt from a parsed code.
pub fn proof_statement(ticket_id: &[u8; TICKET_ID_LEN], slot_start: u64, signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    let mut out = proof_signed_bytes(ticket_id, slot_start);
    out.extend_from_slice(signature);
    out
}

/// Presents `device` (the device key, P-256) under the implied proof key id.
struct ProofSigner<'a>(&'a dyn Signer);

impl Signer for ProofSigner<'_> {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
    fn key_id(&self) -> &[u8] {
        PROOF_KEY_ID
    }
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], StatementError> {
        self.0.sign(message)
    }
}

/// Makes the code for one time slot: the ticket as issued plus a proof signed by the device key
/// (`device`, P-256, the key whose public half is in the ticket). The phone calls this every
/// slot; the gate refuses a slot that is not current, so a screenshot soon stops working and a
/// copied ticket without the device key cannot make a proof.
pub fn make_code(ticket_bytes: &[u8], slot_start: u64, device: &dyn Signer) -> Result<Vec<u8>, TicketError> {
    if device.algorithm() != Algorithm::EcdsaP256Sha256 {
        return Err(TicketError::WrongKey("proofs are signed with the P-256 device key"));
    }
    if slot_start > MAX_SLOT_START {
        return Err(TicketError::InvalidField("slot_start"));
    }
    if statement_len(ticket_bytes, 0)? != ticket_bytes.len() || ticket_bytes[3] != TICKET_TYPE {
        return Err(TicketError::MalformedCode);
    }
    let id = ticket_id(ticket_bytes);
    let fields = Fields::from([
        (tag::PROOF_TICKET_ID, FieldValue::Bytes(id.to_vec())),
        (tag::PROOF_SLOT_START, FieldValue::U64(slot_start)),
    ]);
    let proof = crypto::sign(&PROOF_SCHEMA, &fields, &ProofSigner(device))?;
    debug_assert_eq!(proof[..proof.len() - SIGNATURE_LEN], proof_signed_bytes(&id, slot_start)[..]);
    let mut code = Vec::with_capacity(MAX_CODE_LEN);
    code.push(CODE_VERSION);
    code.extend_from_slice(ticket_bytes);
    write_varint(&mut code, slot_start);
    code.extend_from_slice(&proof[proof.len() - SIGNATURE_LEN..]);
    if code.len() > MAX_CODE_LEN {
        return Err(TicketError::MalformedCode);
    }
    Ok(code)
}

/// Takes a code apart (structure only; nothing in it is trusted).
pub fn parse_code(code: &[u8]) -> Result<ParsedCode, TicketError> {
    if code.len() > MAX_CODE_LEN {
        return Err(TicketError::MalformedCode);
    }
    match code.first() {
        Some(&CODE_VERSION) => {}
        Some(&other) => return Err(TicketError::UnsupportedCodeVersion(other)),
        None => return Err(TicketError::MalformedCode),
    }
    let ticket_len = statement_len(code, 1)?;
    let mut pos = 1 + ticket_len;
    let slot_start = read_varint(code, &mut pos).map_err(|_| TicketError::MalformedCode)?;
    if slot_start > MAX_SLOT_START || code.len() != pos + SIGNATURE_LEN {
        return Err(TicketError::MalformedCode);
    }
    let mut proof_signature = [0u8; SIGNATURE_LEN];
    proof_signature.copy_from_slice(&code[pos..]);
    Ok(ParsedCode { ticket_bytes: code[1..1 + ticket_len].to_vec(), slot_start, proof_signature })
}

/// A code whose two signatures verified: the operator's over the ticket and the device key's
/// over (ticket id, slot start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCode {
    pub ticket: VerifiedTicket,
    pub slot_start: u64,
}

/// Decompresses a 33-byte SEC1 P-256 point to the 65-byte form ring verifies with.
pub fn decompress_device_key(compressed: &[u8]) -> Result<PublicKey, TicketError> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    if compressed.len() != DEVICE_KEY_LEN {
        return Err(TicketError::BadDeviceKey);
    }
    let point = p256::PublicKey::from_sec1_bytes(compressed).map_err(|_| TicketError::BadDeviceKey)?;
    Ok(PublicKey {
        algorithm: Algorithm::EcdsaP256Sha256,
        bytes: point.to_encoded_point(false).as_bytes().to_vec(),
    })
}

/// Compresses a 65-byte uncompressed SEC1 P-256 point (what keystores give) to the 33 bytes a
/// ticket carries.
pub fn compress_device_key(uncompressed: &[u8]) -> Result<Vec<u8>, TicketError> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    if uncompressed.len() != 65 {
        return Err(TicketError::BadDeviceKey);
    }
    let point = p256::PublicKey::from_sec1_bytes(uncompressed).map_err(|_| TicketError::BadDeviceKey)?;
    Ok(point.to_encoded_point(true).as_bytes().to_vec())
}

/// Verifies both signatures of a code: the ticket against the operator keys, then the proof
/// against the device key the ticket names. Time, revocation and pass-back are the caller's.
pub fn verify_code(code: &[u8], operator_keys: &dyn KeySet) -> Result<VerifiedCode, TicketError> {
    let parsed = parse_code(code)?;
    let ticket = verify_ticket(&parsed.ticket_bytes, operator_keys)?;
    let device_key = decompress_device_key(&ticket.ticket.device_key)?;
    let proof = proof_statement(&ticket.id, parsed.slot_start, &parsed.proof_signature);
    let keys = vec![(PROOF_KEY_ID.to_vec(), device_key)];
    let verified = crypto::verify(&PROOF_SCHEMA, &proof, &keys).map_err(|_| TicketError::BadProof)?;
    // The fields are the ones just rebuilt; checked anyway so the proof means what it says.
    if verified.fields.get(&tag::PROOF_TICKET_ID) != Some(&FieldValue::Bytes(ticket.id.to_vec())) {
        return Err(TicketError::BadProof);
    }
    Ok(VerifiedCode { ticket, slot_start: parsed.slot_start })
}

/// The code as QR text (base45).
pub fn code_text(code: &[u8]) -> String {
    super::base45::encode(code)
}

/// Reads QR text back into a code (base45 decode plus [`parse_code`]'s structure checks).
pub fn parse_code_text(text: &str) -> Result<ParsedCode, TicketError> {
    if text.len() > MAX_CODE_LEN / 2 * 3 {
        return Err(TicketError::MalformedCode);
    }
    parse_code(&super::base45::decode(text)?)
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
