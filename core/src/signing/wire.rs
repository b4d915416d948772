//! The three signed statements of document signing (issue 6), in the one signed-statement format
//! (`core/src/crypto`, docs/signed-statements.md). Byte layout and test vectors:
//! `docs/signatures.md`. The server and the phone both encode and verify through this module.
//!
//! - [`Decision`] (type `0x30`): a resident approves or declines an agency's signature request,
//!   signed by the phone's device key (P-256).
//! - [`KeyAttestation`] (type `0x31`): the server states that a device key belonged to a resident
//!   from `registered_at` (until `revoked_at`), signed by the server's Ed25519 key.
//! - [`DossierSignature`] (type `0x32`): a resident signs what they submitted in a case, with the
//!   device key.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::digest::{digest, SHA256};

use crate::crypto::{
    self, Algorithm, FieldKind, FieldSpec, FieldValue, Fields, KeySet, PublicKey, Schema, Signer, StatementError,
    MAGIC, MAX_KEY_ID_LEN, SIGNATURE_LEN, VERSION,
};
use crate::drafts::validation::FieldValue as FormValue;

pub const DECISION_TYPE: u8 = 0x30;
pub const KEY_ATTESTATION_TYPE: u8 = 0x31;
pub const DOSSIER_SIGNATURE_TYPE: u8 = 0x32;

/// The only document hash algorithm so far (field `document_hash_alg`).
pub const HASH_ALG_SHA256: u64 = 1;
pub const SHA256_LEN: usize = 32;
/// A P-256 public key as an uncompressed SEC1 point: `04 ‖ x ‖ y`.
pub const P256_PUBLIC_KEY_LEN: usize = 65;
/// Request, account, draft ids and agency and procedure codes: at most this many bytes.
pub const MAX_ID_LEN: usize = 128;
/// The purpose and a decline reason: at most this many bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 2000;

/// SubjectPublicKeyInfo DER before the 65-byte point of a P-256 key (id-ecPublicKey, prime256v1).
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// SubjectPublicKeyInfo DER before the 32-byte Ed25519 key.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

mod tag {
    // Decision (0x30)
    pub const REQUEST_ID: u8 = 1;
    pub const AGENCY_CODE: u8 = 2;
    pub const DOCUMENT_HASH_ALG: u8 = 3;
    pub const DOCUMENT_HASH: u8 = 4;
    pub const SUMMARY_HASH: u8 = 5;
    pub const INTENT: u8 = 6;
    pub const PURPOSE: u8 = 7;
    pub const DECLINE_REASON: u8 = 8;
    pub const ACCOUNT_ID: u8 = 9;
    pub const DEVICE_KEY_ID: u8 = 10;
    pub const SIGNED_AT: u8 = 11;
    pub const EXPIRES_AT: u8 = 12;
    // Key attestation (0x31)
    pub const ATT_ACCOUNT_ID: u8 = 1;
    pub const ATT_PUBLIC_KEY: u8 = 2;
    pub const ATT_KEY_ID: u8 = 3;
    pub const ATT_REGISTERED_AT: u8 = 4;
    pub const ATT_REVOKED_AT: u8 = 5;
    pub const ATT_ISSUED_AT: u8 = 6;
    // Dossier signature (0x32)
    pub const DOS_ACCOUNT_ID: u8 = 1;
    pub const DOS_PROCEDURE_CODE: u8 = 2;
    pub const DOS_DRAFT_ID: u8 = 3;
    pub const DOS_CONTENT_HASH: u8 = 4;
    pub const DOS_SIGNED_AT: u8 = 5;
}

const fn spec(tag: u8, name: &'static str, kind: FieldKind, required: bool) -> FieldSpec {
    FieldSpec { tag, name, kind, required }
}

pub const DECISION_SCHEMA: Schema = Schema {
    statement_type: DECISION_TYPE,
    name: "signature decision",
    fields: &[
        spec(tag::REQUEST_ID, "request_id", FieldKind::Text, true),
        spec(tag::AGENCY_CODE, "agency_code", FieldKind::Text, true),
        spec(tag::DOCUMENT_HASH_ALG, "document_hash_alg", FieldKind::U64, true),
        spec(tag::DOCUMENT_HASH, "document_hash", FieldKind::Bytes, true),
        spec(tag::SUMMARY_HASH, "summary_hash", FieldKind::Bytes, true),
        spec(tag::INTENT, "intent", FieldKind::U64, true),
        spec(tag::PURPOSE, "purpose", FieldKind::Text, true),
        spec(tag::DECLINE_REASON, "decline_reason", FieldKind::Text, false),
        spec(tag::ACCOUNT_ID, "account_id", FieldKind::Text, true),
        spec(tag::DEVICE_KEY_ID, "device_key_id", FieldKind::Bytes, true),
        spec(tag::SIGNED_AT, "signed_at", FieldKind::U64, true),
        spec(tag::EXPIRES_AT, "expires_at", FieldKind::U64, true),
    ],
};

pub const KEY_ATTESTATION_SCHEMA: Schema = Schema {
    statement_type: KEY_ATTESTATION_TYPE,
    name: "device key attestation",
    fields: &[
        spec(tag::ATT_ACCOUNT_ID, "account_id", FieldKind::Text, true),
        spec(tag::ATT_PUBLIC_KEY, "device_public_key", FieldKind::Bytes, true),
        spec(tag::ATT_KEY_ID, "device_key_id", FieldKind::Bytes, true),
        spec(tag::ATT_REGISTERED_AT, "registered_at", FieldKind::U64, true),
        spec(tag::ATT_REVOKED_AT, "revoked_at", FieldKind::U64, false),
        spec(tag::ATT_ISSUED_AT, "issued_at", FieldKind::U64, true),
    ],
};

pub const DOSSIER_SIGNATURE_SCHEMA: Schema = Schema {
    statement_type: DOSSIER_SIGNATURE_TYPE,
    name: "dossier signature",
    fields: &[
        spec(tag::DOS_ACCOUNT_ID, "account_id", FieldKind::Text, true),
        spec(tag::DOS_PROCEDURE_CODE, "procedure_code", FieldKind::Text, true),
        spec(tag::DOS_DRAFT_ID, "draft_id", FieldKind::Text, true),
        spec(tag::DOS_CONTENT_HASH, "content_hash", FieldKind::Bytes, true),
        spec(tag::DOS_SIGNED_AT, "signed_at", FieldKind::U64, true),
    ],
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The envelope, the signature or the canonical encoding.
    #[error("signed statement: {0}")]
    Statement(#[from] StatementError),
    #[error("field {0} is out of range or inconsistent")]
    InvalidField(&'static str),
    #[error("wrong key for this statement: {0}")]
    WrongKey(&'static str),
    #[error("the device key id in the fields differs from the key that signed")]
    KeyIdMismatch,
    #[error("not base64url")]
    BadEncoding,
}

impl SigningError {
    /// What a person reads: Vietnamese first, then English.
    pub fn user_message(&self) -> &'static str {
        match self {
            SigningError::Statement(StatementError::Signing(_)) => {
                "Không ký được bằng khóa của thiết bị. / The device key could not sign."
            }
            SigningError::Statement(StatementError::UnknownKey) | SigningError::WrongKey(_) => {
                "Khóa ký không được tin cậy. / The signing key is not trusted."
            }
            _ => "Chữ ký không hợp lệ. / The signature is not valid.",
        }
    }
}

/// Approve or decline: field `intent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intent {
    Approve = 1,
    Decline = 2,
}

impl Intent {
    pub fn code(self) -> u64 {
        self as u64
    }
    pub fn from_code(code: u64) -> Option<Intent> {
        match code {
            1 => Some(Intent::Approve),
            2 => Some(Intent::Decline),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Intent::Approve => "approve",
            Intent::Decline => "decline",
        }
    }
}

/// A resident's answer to one signature request: what they saw and what they decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub request_id: String,
    pub agency_code: String,
    /// SHA-256 of the exact document bytes the phone checked (`document_hash_alg` is always 1).
    pub document_sha256: [u8; SHA256_LEN],
    /// [`summary_hash`] of the exact summary text shown.
    pub summary_sha256: [u8; SHA256_LEN],
    pub intent: Intent,
    /// What the signature is for, as the request states it.
    pub purpose: String,
    /// Only with [`Intent::Decline`], and optional then.
    pub decline_reason: Option<String>,
    pub account_id: String,
    /// `PublicKey::default_key_id()` of the device key; equal to the envelope's key id.
    pub device_key_id: Vec<u8>,
    /// Unix seconds.
    pub signed_at: u64,
    /// The request's expiry, unix seconds.
    pub expires_at: u64,
}

fn check_id(value: &str, name: &'static str) -> Result<(), SigningError> {
    if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
        return Err(SigningError::InvalidField(name));
    }
    Ok(())
}

fn check_text(value: &str, name: &'static str) -> Result<(), SigningError> {
    if value.len() > MAX_TEXT_LEN {
        return Err(SigningError::InvalidField(name));
    }
    Ok(())
}

fn check_key_id(key_id: &[u8], name: &'static str) -> Result<(), SigningError> {
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
        return Err(SigningError::InvalidField(name));
    }
    Ok(())
}

fn text_of(fields: &Fields, tag: u8, name: &'static str) -> Result<String, SigningError> {
    opt_text_of(fields, tag).ok_or(SigningError::InvalidField(name))
}

fn opt_text_of(fields: &Fields, tag: u8) -> Option<String> {
    fields.get(&tag).and_then(FieldValue::as_text).map(str::to_string)
}

fn u64_of(fields: &Fields, tag: u8, name: &'static str) -> Result<u64, SigningError> {
    fields.get(&tag).and_then(FieldValue::as_u64).ok_or(SigningError::InvalidField(name))
}

fn bytes_of(fields: &Fields, tag: u8, name: &'static str) -> Result<Vec<u8>, SigningError> {
    fields.get(&tag).and_then(FieldValue::as_bytes).map(<[u8]>::to_vec).ok_or(SigningError::InvalidField(name))
}

fn hash_of(fields: &Fields, tag: u8, name: &'static str) -> Result<[u8; SHA256_LEN], SigningError> {
    bytes_of(fields, tag, name)?.try_into().map_err(|_| SigningError::InvalidField(name))
}

fn require_device_key(signer: &dyn Signer) -> Result<(), SigningError> {
    if signer.algorithm() != Algorithm::EcdsaP256Sha256 {
        return Err(SigningError::WrongKey("signed with the device's P-256 key"));
    }
    Ok(())
}

impl Decision {
    /// The decision's own consistency, checked before signing and after verifying.
    pub fn check(&self) -> Result<(), SigningError> {
        check_id(&self.request_id, "request_id")?;
        check_id(&self.agency_code, "agency_code")?;
        check_id(&self.account_id, "account_id")?;
        check_text(&self.purpose, "purpose")?;
        check_key_id(&self.device_key_id, "device_key_id")?;
        match (&self.intent, &self.decline_reason) {
            (Intent::Approve, Some(_)) => return Err(SigningError::InvalidField("decline_reason")),
            (Intent::Decline, Some(reason)) => check_text(reason, "decline_reason")?,
            _ => {}
        }
        Ok(())
    }

    fn to_fields(&self) -> Fields {
        let mut f = Fields::new();
        f.insert(tag::REQUEST_ID, FieldValue::Text(self.request_id.clone()));
        f.insert(tag::AGENCY_CODE, FieldValue::Text(self.agency_code.clone()));
        f.insert(tag::DOCUMENT_HASH_ALG, FieldValue::U64(HASH_ALG_SHA256));
        f.insert(tag::DOCUMENT_HASH, FieldValue::Bytes(self.document_sha256.to_vec()));
        f.insert(tag::SUMMARY_HASH, FieldValue::Bytes(self.summary_sha256.to_vec()));
        f.insert(tag::INTENT, FieldValue::U64(self.intent.code()));
        f.insert(tag::PURPOSE, FieldValue::Text(self.purpose.clone()));
        if let Some(reason) = &self.decline_reason {
            f.insert(tag::DECLINE_REASON, FieldValue::Text(reason.clone()));
        }
        f.insert(tag::ACCOUNT_ID, FieldValue::Text(self.account_id.clone()));
        f.insert(tag::DEVICE_KEY_ID, FieldValue::Bytes(self.device_key_id.clone()));
        f.insert(tag::SIGNED_AT, FieldValue::U64(self.signed_at));
        f.insert(tag::EXPIRES_AT, FieldValue::U64(self.expires_at));
        f
    }

    fn from_fields(f: &Fields) -> Result<Decision, SigningError> {
        if u64_of(f, tag::DOCUMENT_HASH_ALG, "document_hash_alg")? != HASH_ALG_SHA256 {
            return Err(SigningError::InvalidField("document_hash_alg"));
        }
        let decision = Decision {
            request_id: text_of(f, tag::REQUEST_ID, "request_id")?,
            agency_code: text_of(f, tag::AGENCY_CODE, "agency_code")?,
            document_sha256: hash_of(f, tag::DOCUMENT_HASH, "document_hash")?,
            summary_sha256: hash_of(f, tag::SUMMARY_HASH, "summary_hash")?,
            intent: Intent::from_code(u64_of(f, tag::INTENT, "intent")?).ok_or(SigningError::InvalidField("intent"))?,
            purpose: text_of(f, tag::PURPOSE, "purpose")?,
            decline_reason: opt_text_of(f, tag::DECLINE_REASON),
            account_id: text_of(f, tag::ACCOUNT_ID, "account_id")?,
            device_key_id: bytes_of(f, tag::DEVICE_KEY_ID, "device_key_id")?,
            signed_at: u64_of(f, tag::SIGNED_AT, "signed_at")?,
            expires_at: u64_of(f, tag::EXPIRES_AT, "expires_at")?,
        };
        decision.check()?;
        Ok(decision)
    }

    /// Everything the device key signs: the statement without its signature (what a platform
    /// keystore is handed, and what replay caches key on).
    pub fn signed_bytes(&self) -> Result<Vec<u8>, SigningError> {
        self.check()?;
        Ok(unsigned_statement(&DECISION_SCHEMA, &self.to_fields(), Algorithm::EcdsaP256Sha256, &self.device_key_id)?)
    }

    /// Signs with the device key. The signer's key id must be the decision's `device_key_id`.
    pub fn sign(&self, device_key: &dyn Signer) -> Result<Vec<u8>, SigningError> {
        require_device_key(device_key)?;
        if device_key.key_id() != self.device_key_id.as_slice() {
            return Err(SigningError::KeyIdMismatch);
        }
        self.check()?;
        Ok(crypto::sign(&DECISION_SCHEMA, &self.to_fields(), device_key)?)
    }
}

/// A decision whose device-key signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDecision {
    pub decision: Decision,
    /// The statement as received.
    pub bytes: Vec<u8>,
    /// SHA-256 of the signed bytes: the same decision re-signed or with an altered signature has
    /// the same id (replay detection).
    pub signed_bytes_sha256: [u8; SHA256_LEN],
}

/// Verifies a decision against the resident's device keys, then reads and checks its fields. The
/// caller still compares them with the request (document, summary, expiry, account).
pub fn verify_decision(bytes: &[u8], device_keys: &dyn KeySet) -> Result<VerifiedDecision, SigningError> {
    let verified = crypto::verify(&DECISION_SCHEMA, bytes, device_keys)?;
    if verified.algorithm != Algorithm::EcdsaP256Sha256 {
        return Err(SigningError::WrongKey("a decision is signed with a device's P-256 key"));
    }
    let decision = Decision::from_fields(&verified.fields)?;
    if decision.device_key_id != verified.key_id {
        return Err(SigningError::KeyIdMismatch);
    }
    Ok(VerifiedDecision { decision, bytes: bytes.to_vec(), signed_bytes_sha256: signed_bytes_sha256(bytes) })
}

/// "This device key belonged to this resident at that time", signed by the server (Ed25519).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAttestation {
    pub account_id: String,
    /// The 65-byte uncompressed P-256 point.
    pub device_public_key: Vec<u8>,
    /// `PublicKey::default_key_id()` of it.
    pub device_key_id: Vec<u8>,
    /// Unix seconds.
    pub registered_at: u64,
    pub revoked_at: Option<u64>,
    pub issued_at: u64,
}

impl KeyAttestation {
    pub fn check(&self) -> Result<(), SigningError> {
        check_id(&self.account_id, "account_id")?;
        if self.device_public_key.len() != P256_PUBLIC_KEY_LEN || self.device_public_key[0] != 0x04 {
            return Err(SigningError::InvalidField("device_public_key"));
        }
        let key = PublicKey { algorithm: Algorithm::EcdsaP256Sha256, bytes: self.device_public_key.clone() };
        if key.default_key_id() != self.device_key_id {
            return Err(SigningError::InvalidField("device_key_id"));
        }
        if self.revoked_at.is_some_and(|r| r < self.registered_at) {
            return Err(SigningError::InvalidField("revoked_at"));
        }
        Ok(())
    }

    /// The attested key, for verifying the resident's statements with it.
    pub fn device_key(&self) -> PublicKey {
        PublicKey { algorithm: Algorithm::EcdsaP256Sha256, bytes: self.device_public_key.clone() }
    }

    /// Whether the key was the resident's at `at` (unix seconds): registered, not yet revoked.
    pub fn valid_at(&self, at: u64) -> bool {
        at >= self.registered_at && self.revoked_at.is_none_or(|r| at < r)
    }

    fn to_fields(&self) -> Fields {
        let mut f = Fields::new();
        f.insert(tag::ATT_ACCOUNT_ID, FieldValue::Text(self.account_id.clone()));
        f.insert(tag::ATT_PUBLIC_KEY, FieldValue::Bytes(self.device_public_key.clone()));
        f.insert(tag::ATT_KEY_ID, FieldValue::Bytes(self.device_key_id.clone()));
        f.insert(tag::ATT_REGISTERED_AT, FieldValue::U64(self.registered_at));
        if let Some(r) = self.revoked_at {
            f.insert(tag::ATT_REVOKED_AT, FieldValue::U64(r));
        }
        f.insert(tag::ATT_ISSUED_AT, FieldValue::U64(self.issued_at));
        f
    }

    fn from_fields(f: &Fields) -> Result<KeyAttestation, SigningError> {
        let attestation = KeyAttestation {
            account_id: text_of(f, tag::ATT_ACCOUNT_ID, "account_id")?,
            device_public_key: bytes_of(f, tag::ATT_PUBLIC_KEY, "device_public_key")?,
            device_key_id: bytes_of(f, tag::ATT_KEY_ID, "device_key_id")?,
            registered_at: u64_of(f, tag::ATT_REGISTERED_AT, "registered_at")?,
            revoked_at: f.get(&tag::ATT_REVOKED_AT).and_then(FieldValue::as_u64),
            issued_at: u64_of(f, tag::ATT_ISSUED_AT, "issued_at")?,
        };
        attestation.check()?;
        Ok(attestation)
    }

    /// Signs with the server's Ed25519 signing key.
    pub fn sign(&self, server_key: &dyn Signer) -> Result<Vec<u8>, SigningError> {
        if server_key.algorithm() != Algorithm::Ed25519 {
            return Err(SigningError::WrongKey("attestations are signed with the server's Ed25519 key"));
        }
        self.check()?;
        Ok(crypto::sign(&KEY_ATTESTATION_SCHEMA, &self.to_fields(), server_key)?)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKeyAttestation {
    pub attestation: KeyAttestation,
    /// The server key that signed it.
    pub server_key_id: Vec<u8>,
    pub bytes: Vec<u8>,
}

/// Verifies an attestation against the server's published keys.
pub fn verify_key_attestation(bytes: &[u8], server_keys: &dyn KeySet) -> Result<VerifiedKeyAttestation, SigningError> {
    let verified = crypto::verify(&KEY_ATTESTATION_SCHEMA, bytes, server_keys)?;
    if verified.algorithm != Algorithm::Ed25519 {
        return Err(SigningError::WrongKey("an attestation is signed with the server's Ed25519 key"));
    }
    let attestation = KeyAttestation::from_fields(&verified.fields)?;
    Ok(VerifiedKeyAttestation { attestation, server_key_id: verified.key_id, bytes: bytes.to_vec() })
}

/// A resident's signature over what they submitted in a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DossierSignature {
    pub account_id: String,
    pub procedure_code: String,
    pub draft_id: String,
    /// [`dossier_content_hash`] of the submitted values and attachments.
    pub content_sha256: [u8; SHA256_LEN],
    /// Unix seconds.
    pub signed_at: u64,
}

impl DossierSignature {
    pub fn check(&self) -> Result<(), SigningError> {
        check_id(&self.account_id, "account_id")?;
        check_id(&self.procedure_code, "procedure_code")?;
        check_id(&self.draft_id, "draft_id")
    }

    fn to_fields(&self) -> Fields {
        let mut f = Fields::new();
        f.insert(tag::DOS_ACCOUNT_ID, FieldValue::Text(self.account_id.clone()));
        f.insert(tag::DOS_PROCEDURE_CODE, FieldValue::Text(self.procedure_code.clone()));
        f.insert(tag::DOS_DRAFT_ID, FieldValue::Text(self.draft_id.clone()));
        f.insert(tag::DOS_CONTENT_HASH, FieldValue::Bytes(self.content_sha256.to_vec()));
        f.insert(tag::DOS_SIGNED_AT, FieldValue::U64(self.signed_at));
        f
    }

    fn from_fields(f: &Fields) -> Result<DossierSignature, SigningError> {
        let dossier = DossierSignature {
            account_id: text_of(f, tag::DOS_ACCOUNT_ID, "account_id")?,
            procedure_code: text_of(f, tag::DOS_PROCEDURE_CODE, "procedure_code")?,
            draft_id: text_of(f, tag::DOS_DRAFT_ID, "draft_id")?,
            content_sha256: hash_of(f, tag::DOS_CONTENT_HASH, "content_hash")?,
            signed_at: u64_of(f, tag::DOS_SIGNED_AT, "signed_at")?,
        };
        dossier.check()?;
        Ok(dossier)
    }

    /// Everything the device key signs (see [`Decision::signed_bytes`]).
    pub fn signed_bytes(&self, device_key_id: &[u8]) -> Result<Vec<u8>, SigningError> {
        self.check()?;
        check_key_id(device_key_id, "device_key_id")?;
        Ok(unsigned_statement(&DOSSIER_SIGNATURE_SCHEMA, &self.to_fields(), Algorithm::EcdsaP256Sha256, device_key_id)?)
    }

    pub fn sign(&self, device_key: &dyn Signer) -> Result<Vec<u8>, SigningError> {
        require_device_key(device_key)?;
        self.check()?;
        Ok(crypto::sign(&DOSSIER_SIGNATURE_SCHEMA, &self.to_fields(), device_key)?)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDossierSignature {
    pub dossier: DossierSignature,
    /// The device key that signed it.
    pub device_key_id: Vec<u8>,
    pub bytes: Vec<u8>,
}

/// Verifies a dossier signature against the resident's device keys. The caller still compares the
/// content hash with [`dossier_content_hash`] of what was submitted, and the account and draft.
pub fn verify_dossier_signature(
    bytes: &[u8],
    device_keys: &dyn KeySet,
) -> Result<VerifiedDossierSignature, SigningError> {
    let verified = crypto::verify(&DOSSIER_SIGNATURE_SCHEMA, bytes, device_keys)?;
    if verified.algorithm != Algorithm::EcdsaP256Sha256 {
        return Err(SigningError::WrongKey("a dossier is signed with a device's P-256 key"));
    }
    let dossier = DossierSignature::from_fields(&verified.fields)?;
    Ok(VerifiedDossierSignature { dossier, device_key_id: verified.key_id, bytes: bytes.to_vec() })
}

/// The key id in a statement's envelope, read without verifying anything: to find which of a
/// resident's keys to load before [`verify_decision`]. `None` if the envelope is malformed.
pub fn statement_key_id(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < 6 || bytes[..2] != MAGIC || bytes[2] != VERSION {
        return None;
    }
    let len = bytes[5] as usize;
    if len == 0 || len > MAX_KEY_ID_LEN {
        return None;
    }
    bytes.get(6..6 + len)
}

/// SHA-256 of a statement's signed bytes (everything before the 64-byte signature).
pub fn signed_bytes_sha256(statement: &[u8]) -> [u8; SHA256_LEN] {
    sha256(&statement[..statement.len().saturating_sub(SIGNATURE_LEN)])
}

pub fn sha256(bytes: &[u8]) -> [u8; SHA256_LEN] {
    let mut out = [0u8; SHA256_LEN];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// SHA-256 of the exact UTF-8 summary text shown to the resident. No normalisation: the text is
/// hashed as received from the server and shown, byte for byte.
pub fn summary_hash(text: &str) -> [u8; SHA256_LEN] {
    sha256(text.as_bytes())
}

/// The canonical content of a submitted dossier, hashed into its [`DossierSignature`]: the JSON
/// `{"attachments":{rule:[sha256 hex, sorted]},"values":{field id:value}}` with object keys sorted
/// by their UTF-8 bytes, no whitespace, values as the `case.submit` body writes them
/// (`{"type":…,"value":…}`), numbers as the shortest text that reads back as the same f64,
/// strings with only `"`, `\` and control characters escaped (docs/signatures.md).
pub fn dossier_content_hash(
    values: &BTreeMap<String, FormValue>,
    attachments: &BTreeMap<String, Vec<String>>,
) -> [u8; SHA256_LEN] {
    sha256(&dossier_content(values, attachments))
}

/// The bytes [`dossier_content_hash`] hashes.
pub fn dossier_content(values: &BTreeMap<String, FormValue>, attachments: &BTreeMap<String, Vec<String>>) -> Vec<u8> {
    let attachments: BTreeMap<&str, Vec<String>> = attachments
        .iter()
        .map(|(rule, hashes)| {
            let mut sorted: Vec<String> = hashes.iter().map(|h| h.to_ascii_lowercase()).collect();
            sorted.sort();
            (rule.as_str(), sorted)
        })
        .collect();
    // serde_json writes a BTreeMap's keys in order and a struct's fields in declaration order;
    // `attachments` before `values` is the sorted order of the two top-level keys.
    #[derive(serde::Serialize)]
    struct Content<'a> {
        attachments: BTreeMap<&'a str, Vec<String>>,
        values: &'a BTreeMap<String, FormValue>,
    }
    serde_json::to_vec(&Content { attachments, values }).unwrap_or_default()
}

/// A statement as it travels in JSON bodies: base64url without padding.
pub fn encode_statement(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode_statement(text: &str) -> Result<Vec<u8>, SigningError> {
    URL_SAFE_NO_PAD.decode(text.as_bytes()).map_err(|_| SigningError::BadEncoding)
}

/// A public key as PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`, 64-character lines),
/// for OpenSSL and other third-party verifiers.
pub fn public_key_pem(key: &PublicKey) -> Result<String, SigningError> {
    let mut der = Vec::with_capacity(P256_SPKI_PREFIX.len() + P256_PUBLIC_KEY_LEN);
    match key.algorithm {
        Algorithm::EcdsaP256Sha256 if key.bytes.len() == P256_PUBLIC_KEY_LEN && key.bytes[0] == 0x04 => {
            der.extend_from_slice(&P256_SPKI_PREFIX)
        }
        Algorithm::Ed25519 if key.bytes.len() == 32 => der.extend_from_slice(&ED25519_SPKI_PREFIX),
        _ => return Err(SigningError::InvalidField("public key")),
    }
    der.extend_from_slice(&key.bytes);
    let b64 = STANDARD.encode(&der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    Ok(pem)
}

/// The statement bytes before the signature, for a key that signs elsewhere (a phone keystore
/// behind a user-presence prompt): exactly what [`crypto::sign`] hands its signer.
fn unsigned_statement(
    schema: &Schema,
    fields: &Fields,
    algorithm: Algorithm,
    key_id: &[u8],
) -> Result<Vec<u8>, StatementError> {
    struct Capture<'a> {
        algorithm: Algorithm,
        key_id: &'a [u8],
        seen: std::sync::Mutex<Vec<u8>>,
    }
    impl Signer for Capture<'_> {
        fn algorithm(&self) -> Algorithm {
            self.algorithm
        }
        fn key_id(&self) -> &[u8] {
            self.key_id
        }
        fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], StatementError> {
            *self.seen.lock().map_err(|_| StatementError::Signing("poisoned".into()))? = message.to_vec();
            Ok([0u8; SIGNATURE_LEN])
        }
    }
    let capture = Capture { algorithm, key_id, seen: std::sync::Mutex::new(Vec::new()) };
    crypto::sign(schema, fields, &capture)?;
    let seen = capture.seen.into_inner().map_err(|_| StatementError::Signing("poisoned".into()))?;
    Ok(seen)
}

/// Appends a signature made elsewhere to [`Decision::signed_bytes`] or
/// [`DossierSignature::signed_bytes`]: the complete statement.
pub fn attach_signature(signed_bytes: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(signed_bytes.len() + SIGNATURE_LEN);
    out.extend_from_slice(signed_bytes);
    out.extend_from_slice(signature);
    out
}
