//! The identity credential (brief, capability 2): a statement signed by the city that the phone
//! shows as a QR at a front desk, disclosing only the attributes the resident picks, verifiable
//! offline by the officer's device. Byte layout and test vectors: `docs/identity-credential.md`.
//!
//! Selective disclosure with salted digests (the idea of SD-JWT and ISO mdoc, in the project's one
//! signed-statement format): the credential (`0x40`, the city's Ed25519 key) carries, per
//! attribute, the first 16 bytes of SHA-256 over (domain, attribute, 16-byte random salt, value),
//! and the phone's device key. The phone keeps the salts and values. To present, it signs a
//! presentation (`0x41`, its P-256 device key in the keystore) holding the chosen attributes with
//! their salts, the time on the server's clock, and the digest of the credential. The officer's
//! device checks the city's signature, then the device's, then each disclosed value against its
//! digest, then the times: an undisclosed value is never in the QR, a changed one does not match
//! its digest, a screenshot goes stale within minutes, and a copied credential cannot be presented
//! without the phone's key.

pub mod holder;
pub mod verifier;
pub mod wire;

use std::collections::BTreeMap;

use crate::crypto::{self, Algorithm, FieldKind, FieldSpec, FieldValue, Fields, KeySet, PublicKey, Schema, Signer, StatementError};

pub const CREDENTIAL_TYPE: u8 = 0x40;
pub const PRESENTATION_TYPE: u8 = 0x41;
pub const SALT_LEN: usize = 16;
pub const DIGEST_LEN: usize = 16;
pub const CREDENTIAL_ID_LEN: usize = 16;
/// The presentation is signed by the device key the credential names; its key id says so, with
/// the same one-byte convention as the ticket proofs (signed through the same keystore signer).
pub const PRESENTATION_KEY_ID: &[u8] = crate::tickets::wire::PROOF_KEY_ID;
/// Domain separation for the attribute digests.
const DIGEST_DOMAIN: &[u8] = b"congdan-credential-attribute-v1";
/// Longest attribute value accepted (a Vietnamese full name in UTF-8 fits many times over).
pub const MAX_VALUE_BYTES: usize = 200;
/// Longest QR payload a verifier reads (a presentation of every attribute is about 420 bytes).
pub const MAX_PRESENTATION_BYTES: usize = 1_200;

/// What a credential can vouch for. The numbers are on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attribute {
    FullName = 1,
    NationalId = 2,
    BirthDate = 3,
    /// Present (value `true`) only when the resident was 18 or older at issuance: an age check
    /// without showing the birth date.
    AgeOver18 = 4,
    AgeOver60 = 5,
}

impl Attribute {
    pub const ALL: [Attribute; 5] =
        [Attribute::FullName, Attribute::NationalId, Attribute::BirthDate, Attribute::AgeOver18, Attribute::AgeOver60];

    pub fn from_byte(b: u8) -> Option<Attribute> {
        Attribute::ALL.into_iter().find(|a| *a as u8 == b)
    }

    /// The stable name (API, CLI).
    pub fn name(self) -> &'static str {
        match self {
            Attribute::FullName => "full_name",
            Attribute::NationalId => "national_id",
            Attribute::BirthDate => "birth_date",
            Attribute::AgeOver18 => "age_over_18",
            Attribute::AgeOver60 => "age_over_60",
        }
    }

    pub fn from_name(name: &str) -> Option<Attribute> {
        Attribute::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The label on the officer's screen, Vietnamese and English.
    pub fn label(self) -> (&'static str, &'static str) {
        match self {
            Attribute::FullName => ("Họ và tên", "Full name"),
            Attribute::NationalId => ("Số định danh cá nhân", "Personal ID number"),
            Attribute::BirthDate => ("Ngày sinh", "Date of birth"),
            Attribute::AgeOver18 => ("Đủ 18 tuổi", "Aged 18 or over"),
            Attribute::AgeOver60 => ("Đủ 60 tuổi", "Aged 60 or over"),
        }
    }
}

/// One attribute as the phone keeps it: its value and the salt its digest was made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disclosure {
    pub attribute: Attribute,
    pub salt: [u8; SALT_LEN],
    pub value: String,
}

impl Disclosure {
    pub fn digest(&self) -> [u8; DIGEST_LEN] {
        attribute_digest(self.attribute, &self.salt, &self.value)
    }
}

/// First 16 bytes of SHA-256(domain ‖ attribute ‖ salt ‖ value).
pub fn attribute_digest(attribute: Attribute, salt: &[u8; SALT_LEN], value: &str) -> [u8; DIGEST_LEN] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(DIGEST_DOMAIN);
    ctx.update(&[attribute as u8]);
    ctx.update(salt);
    ctx.update(value.as_bytes());
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&ctx.finish().as_ref()[..DIGEST_LEN]);
    out
}

/// First 16 bytes of SHA-256 over a whole credential statement: what a presentation names.
pub fn credential_hash(statement: &[u8]) -> [u8; DIGEST_LEN] {
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&ring::digest::digest(&ring::digest::SHA256, statement).as_ref()[..DIGEST_LEN]);
    out
}

const CREDENTIAL_FIELDS: &[FieldSpec] = &[
    FieldSpec { tag: 1, name: "credential_id", kind: FieldKind::Bytes, required: true },
    FieldSpec { tag: 2, name: "device_key", kind: FieldKind::Bytes, required: true },
    FieldSpec { tag: 3, name: "issued_at", kind: FieldKind::U64, required: true },
    FieldSpec { tag: 4, name: "expires_at", kind: FieldKind::U64, required: true },
    FieldSpec { tag: 5, name: "digests", kind: FieldKind::Bytes, required: true },
];
pub const CREDENTIAL_SCHEMA: Schema =
    Schema { statement_type: CREDENTIAL_TYPE, name: "identity credential", fields: CREDENTIAL_FIELDS };

const PRESENTATION_FIELDS: &[FieldSpec] = &[
    FieldSpec { tag: 1, name: "credential_hash", kind: FieldKind::Bytes, required: true },
    FieldSpec { tag: 2, name: "presented_at", kind: FieldKind::U64, required: true },
    FieldSpec { tag: 3, name: "disclosures", kind: FieldKind::Bytes, required: true },
];
pub const PRESENTATION_SCHEMA: Schema =
    Schema { statement_type: PRESENTATION_TYPE, name: "credential presentation", fields: PRESENTATION_FIELDS };

/// Why a credential or a presentation is not accepted. Each has its own code and message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialRefusal {
    #[error("not an identity QR code, or damaged")]
    Malformed,
    #[error("signed by a key this device does not trust")]
    UnknownKey,
    #[error("the city's signature does not verify")]
    Forged,
    #[error("the presentation is not signed by the phone the credential belongs to")]
    WrongDevice,
    #[error("the presentation belongs to another credential")]
    CredentialMismatch,
    #[error("a shown value does not match what the city signed")]
    Tampered,
    #[error("the credential has expired")]
    Expired,
    #[error("the credential is not valid yet")]
    NotYetValid,
    #[error("the code is too old (a screenshot?)")]
    Stale,
    #[error("the code is dated in the future: check this device's clock")]
    ClockSkew,
    #[error("the code shows no attribute")]
    NothingDisclosed,
}

impl CredentialRefusal {
    pub fn code(self) -> &'static str {
        match self {
            CredentialRefusal::Malformed => "malformed",
            CredentialRefusal::UnknownKey => "unknown_key",
            CredentialRefusal::Forged => "forged",
            CredentialRefusal::WrongDevice => "wrong_device",
            CredentialRefusal::CredentialMismatch => "credential_mismatch",
            CredentialRefusal::Tampered => "tampered",
            CredentialRefusal::Expired => "expired",
            CredentialRefusal::NotYetValid => "not_yet_valid",
            CredentialRefusal::Stale => "stale",
            CredentialRefusal::ClockSkew => "clock_skew",
            CredentialRefusal::NothingDisclosed => "nothing_disclosed",
        }
    }

    /// What the officer's screen says, Vietnamese first.
    pub fn user_message(self) -> (&'static str, &'static str) {
        match self {
            CredentialRefusal::Malformed => ("Mã QR không phải thẻ định danh hoặc bị hỏng.", "This QR code is not an identity card, or it is damaged."),
            CredentialRefusal::UnknownKey => (
                "Thiết bị chưa có khoá của thành phố cho thẻ này. Hãy cập nhật khi có mạng.",
                "This device does not have the city's key for this card. Update it when online.",
            ),
            CredentialRefusal::Forged | CredentialRefusal::Tampered | CredentialRefusal::CredentialMismatch => {
                ("Thẻ định danh không hợp lệ: dữ liệu đã bị sửa.", "Identity card not valid: its data was changed.")
            }
            CredentialRefusal::WrongDevice => (
                "Thẻ định danh không được hiển thị từ điện thoại của chủ thẻ.",
                "This identity card is not being shown from its owner's phone.",
            ),
            CredentialRefusal::Expired => ("Thẻ định danh đã hết hạn. Người dân cần mở ứng dụng khi có mạng.", "The identity card has expired. The resident must open the app while online."),
            CredentialRefusal::NotYetValid | CredentialRefusal::ClockSkew => (
                "Thời gian trên thiết bị không khớp. Hãy kiểm tra đồng hồ.",
                "The times do not match. Check this device's clock.",
            ),
            CredentialRefusal::Stale => ("Mã đã cũ (có thể là ảnh chụp màn hình). Đề nghị người dân mở lại mã.", "The code is old (perhaps a screenshot). Ask the resident to open it again."),
            CredentialRefusal::NothingDisclosed => ("Mã không hiển thị thông tin nào.", "The code shows no information."),
        }
    }
}

/// A credential whose city signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub credential_id: [u8; CREDENTIAL_ID_LEN],
    /// The device key, compressed SEC1 (33 bytes).
    pub device_key: Vec<u8>,
    pub issued_at: u64,
    pub expires_at: u64,
    pub digests: BTreeMap<Attribute, [u8; DIGEST_LEN]>,
    /// The key id of the city key that signed it.
    pub key_id: Vec<u8>,
}

fn bytes_field(fields: &Fields, tag: u8) -> Result<&[u8], CredentialRefusal> {
    fields.get(&tag).and_then(FieldValue::as_bytes).ok_or(CredentialRefusal::Malformed)
}

fn u64_field(fields: &Fields, tag: u8) -> Result<u64, CredentialRefusal> {
    fields.get(&tag).and_then(FieldValue::as_u64).ok_or(CredentialRefusal::Malformed)
}

fn encode_digests(disclosures: &[Disclosure]) -> Vec<u8> {
    let mut out = Vec::with_capacity(disclosures.len() * (1 + DIGEST_LEN));
    for d in disclosures {
        out.push(d.attribute as u8);
        out.extend_from_slice(&d.digest());
    }
    out
}

fn decode_digests(bytes: &[u8]) -> Result<BTreeMap<Attribute, [u8; DIGEST_LEN]>, CredentialRefusal> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(1 + DIGEST_LEN) {
        return Err(CredentialRefusal::Malformed);
    }
    let mut out = BTreeMap::new();
    let mut last = 0u8;
    for entry in bytes.chunks(1 + DIGEST_LEN) {
        // Strictly increasing attribute numbers: one encoding per credential.
        if entry[0] <= last {
            return Err(CredentialRefusal::Malformed);
        }
        last = entry[0];
        let attribute = Attribute::from_byte(entry[0]).ok_or(CredentialRefusal::Malformed)?;
        let mut digest = [0u8; DIGEST_LEN];
        digest.copy_from_slice(&entry[1..]);
        out.insert(attribute, digest);
    }
    Ok(out)
}

/// Sorts, checks and signs: the city's side (the server issues with its key).
pub fn issue(
    credential_id: [u8; CREDENTIAL_ID_LEN],
    device_key_compressed: &[u8],
    issued_at: u64,
    expires_at: u64,
    disclosures: &mut Vec<Disclosure>,
    signer: &dyn Signer,
) -> Result<Vec<u8>, StatementError> {
    disclosures.sort_by_key(|d| d.attribute);
    disclosures.dedup_by_key(|d| d.attribute);
    if disclosures.is_empty() || disclosures.iter().any(|d| d.value.len() > MAX_VALUE_BYTES) {
        return Err(StatementError::Signing("a credential needs 1 to 5 attributes of at most 200 bytes".into()));
    }
    let fields: Fields = [
        (1, FieldValue::Bytes(credential_id.to_vec())),
        (2, FieldValue::Bytes(device_key_compressed.to_vec())),
        (3, FieldValue::U64(issued_at)),
        (4, FieldValue::U64(expires_at)),
        (5, FieldValue::Bytes(encode_digests(disclosures))),
    ]
    .into_iter()
    .collect();
    crypto::sign(&CREDENTIAL_SCHEMA, &fields, signer)
}

/// Verifies a credential's city signature, then reads it. Times are the caller's to check.
pub fn verify_credential(statement: &[u8], city_keys: &dyn KeySet) -> Result<Credential, CredentialRefusal> {
    let verified = crypto::verify(&CREDENTIAL_SCHEMA, statement, city_keys).map_err(|e| match e {
        StatementError::UnknownKey => CredentialRefusal::UnknownKey,
        StatementError::BadSignature => CredentialRefusal::Forged,
        _ => CredentialRefusal::Malformed,
    })?;
    if verified.algorithm != Algorithm::Ed25519 {
        return Err(CredentialRefusal::Malformed);
    }
    let f = &verified.fields;
    let credential_id: [u8; CREDENTIAL_ID_LEN] = bytes_field(f, 1)?.try_into().map_err(|_| CredentialRefusal::Malformed)?;
    let device_key = bytes_field(f, 2)?.to_vec();
    if device_key.len() != 33 {
        return Err(CredentialRefusal::Malformed);
    }
    Ok(Credential {
        credential_id,
        device_key,
        issued_at: u64_field(f, 3)?,
        expires_at: u64_field(f, 4)?,
        digests: decode_digests(bytes_field(f, 5)?)?,
        key_id: verified.key_id,
    })
}

fn encode_disclosures(shown: &[&Disclosure]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in shown {
        out.push(d.attribute as u8);
        out.extend_from_slice(&d.salt);
        crypto::write_varint(&mut out, d.value.len() as u64);
        out.extend_from_slice(d.value.as_bytes());
    }
    out
}

fn decode_disclosures(bytes: &[u8]) -> Result<Vec<Disclosure>, CredentialRefusal> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut last = 0u8;
    while pos < bytes.len() {
        let id = bytes[pos];
        if id <= last {
            return Err(CredentialRefusal::Malformed);
        }
        last = id;
        let attribute = Attribute::from_byte(id).ok_or(CredentialRefusal::Malformed)?;
        let salt: [u8; SALT_LEN] =
            bytes.get(pos + 1..pos + 1 + SALT_LEN).ok_or(CredentialRefusal::Malformed)?.try_into().map_err(|_| CredentialRefusal::Malformed)?;
        pos += 1 + SALT_LEN;
        let len = crypto::read_varint(bytes, &mut pos).map_err(|_| CredentialRefusal::Malformed)? as usize;
        if len > MAX_VALUE_BYTES {
            return Err(CredentialRefusal::Malformed);
        }
        let end = pos.checked_add(len).ok_or(CredentialRefusal::Malformed)?;
        let value = std::str::from_utf8(bytes.get(pos..end).ok_or(CredentialRefusal::Malformed)?)
            .map_err(|_| CredentialRefusal::Malformed)?
            .to_string();
        pos = end;
        out.push(Disclosure { attribute, salt, value });
    }
    Ok(out)
}

/// The phone's side: the QR payload showing `shown` (a subset of what the credential holds),
/// dated `presented_at` (server clock, seconds), signed by the device key through `device`.
/// Layout: varint length of the credential ‖ credential ‖ presentation statement.
pub fn present(
    credential: &[u8],
    held: &[Disclosure],
    shown: &[Attribute],
    presented_at: u64,
    device: &dyn Signer,
) -> Result<Vec<u8>, StatementError> {
    let mut chosen: Vec<&Disclosure> = held.iter().filter(|d| shown.contains(&d.attribute)).collect();
    chosen.sort_by_key(|d| d.attribute);
    chosen.dedup_by_key(|d| d.attribute);
    if chosen.is_empty() {
        return Err(StatementError::Signing("choose at least one attribute the credential holds".into()));
    }
    let fields: Fields = [
        (1, FieldValue::Bytes(credential_hash(credential).to_vec())),
        (2, FieldValue::U64(presented_at)),
        (3, FieldValue::Bytes(encode_disclosures(&chosen))),
    ]
    .into_iter()
    .collect();
    let presentation = crypto::sign(&PRESENTATION_SCHEMA, &fields, device)?;
    let mut out = Vec::with_capacity(3 + credential.len() + presentation.len());
    crypto::write_varint(&mut out, credential.len() as u64);
    out.extend_from_slice(credential);
    out.extend_from_slice(&presentation);
    Ok(out)
}

/// Time rules of a verifier (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// How old a presentation may be: long enough to hand the phone over, short enough that a
    /// screenshot is useless (the phone redraws its code every 30 s).
    pub max_age_secs: u64,
    /// How far the two clocks may disagree.
    pub clock_skew_secs: u64,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness { max_age_secs: 120, clock_skew_secs: 60 }
    }
}

/// One attribute as the officer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShownAttribute {
    pub attribute: Attribute,
    pub value: String,
}

/// A presentation that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPresentation {
    pub shown: Vec<ShownAttribute>,
    pub credential_id: [u8; CREDENTIAL_ID_LEN],
    pub city_key_id: Vec<u8>,
    pub issued_at: u64,
    pub expires_at: u64,
    pub presented_at: u64,
}

struct DeviceKeyOf(PublicKey);

impl KeySet for DeviceKeyOf {
    fn key(&self, algorithm: Algorithm, key_id: &[u8]) -> Option<PublicKey> {
        (algorithm == Algorithm::EcdsaP256Sha256 && key_id == PRESENTATION_KEY_ID).then(|| self.0.clone())
    }
}

/// Every check, in order: the city's signature, the device's signature, the link between the
/// two, each value against its digest, then validity and freshness at `now` (seconds).
pub fn verify_presentation(
    payload: &[u8],
    city_keys: &dyn KeySet,
    now: u64,
    freshness: Freshness,
) -> Result<VerifiedPresentation, CredentialRefusal> {
    if payload.len() > MAX_PRESENTATION_BYTES {
        return Err(CredentialRefusal::Malformed);
    }
    let mut pos = 0;
    let credential_len = crypto::read_varint(payload, &mut pos).map_err(|_| CredentialRefusal::Malformed)? as usize;
    let split = pos.checked_add(credential_len).filter(|&s| s < payload.len()).ok_or(CredentialRefusal::Malformed)?;
    let (credential_bytes, presentation_bytes) = (&payload[pos..split], &payload[split..]);
    let credential = verify_credential(credential_bytes, city_keys)?;
    let device = crate::tickets::wire::decompress_device_key(&credential.device_key).map_err(|_| CredentialRefusal::Malformed)?;
    let presentation = crypto::verify(&PRESENTATION_SCHEMA, presentation_bytes, &DeviceKeyOf(device)).map_err(|e| match e {
        StatementError::UnknownKey | StatementError::BadSignature => CredentialRefusal::WrongDevice,
        _ => CredentialRefusal::Malformed,
    })?;
    let f = &presentation.fields;
    if bytes_field(f, 1)? != credential_hash(credential_bytes) {
        return Err(CredentialRefusal::CredentialMismatch);
    }
    let presented_at = u64_field(f, 2)?;
    let disclosures = decode_disclosures(bytes_field(f, 3)?)?;
    if disclosures.is_empty() {
        return Err(CredentialRefusal::NothingDisclosed);
    }
    for d in &disclosures {
        if credential.digests.get(&d.attribute) != Some(&d.digest()) {
            return Err(CredentialRefusal::Tampered);
        }
    }
    if credential.issued_at > now + freshness.clock_skew_secs {
        return Err(CredentialRefusal::NotYetValid);
    }
    if credential.expires_at <= now {
        return Err(CredentialRefusal::Expired);
    }
    if presented_at > now + freshness.clock_skew_secs {
        return Err(CredentialRefusal::ClockSkew);
    }
    if presented_at + freshness.max_age_secs < now {
        return Err(CredentialRefusal::Stale);
    }
    Ok(VerifiedPresentation {
        shown: disclosures.into_iter().map(|d| ShownAttribute { attribute: d.attribute, value: d.value }).collect(),
        credential_id: credential.credential_id,
        city_key_id: credential.key_id,
        issued_at: credential.issued_at,
        expires_at: credential.expires_at,
        presented_at,
    })
}

/// The largest QR symbol an identity code needs (85 × 85 modules): read by a desk scanner or
/// an officer's phone from a hand's length, not by a gate's fixed camera.
pub const QR_MAX_VERSION: u8 = 17;

/// The QR symbol of a code's text.
pub fn qr_symbol(text: &str) -> Result<crate::tickets::qr::QrMatrix, crate::tickets::qr::QrError> {
    crate::tickets::qr::encode_up_to(text, QR_MAX_VERSION)
}

/// The QR text: base45 (the QR alphanumeric mode's alphabet), as ticket codes are written.
pub fn to_qr_text(payload: &[u8]) -> String {
    crate::tickets::base45::encode(payload)
}

pub fn from_qr_text(text: &str) -> Result<Vec<u8>, CredentialRefusal> {
    if text.len() > MAX_PRESENTATION_BYTES * 3 / 2 + 3 {
        return Err(CredentialRefusal::Malformed);
    }
    crate::tickets::base45::decode(text.trim()).map_err(|_| CredentialRefusal::Malformed)
}

#[cfg(test)]
mod format_doc_tests;
#[cfg(test)]
mod tests;
