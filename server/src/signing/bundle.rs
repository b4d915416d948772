//! Verification bundles: everything a third party needs to check a resident's signature with
//! nothing but OpenSSL (docs/signatures.md, "Verify with openssl"): the signed bytes, the
//! signature (raw r‖s and DER), the device public key as PEM, and the server's key attestation
//! (statement 0x31, Ed25519) with the server's public key as PEM. Plus the fields decoded, for
//! people.
//!
//! The attestation key is the server's own Ed25519 key of purpose `key_attestation`, kept in the
//! database with the other server keys (identity/keys.rs) so every instance signs with the same
//! one, and never rotated: bundles downloaded years ago still name it.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use congdan_core::crypto::{hex, Ed25519Signer, PublicKey, SIGNATURE_LEN};
use congdan_core::signing::wire::{public_key_pem, KeyAttestation};

// The bundle's JSON is the core's, so the agency's client reads exactly what is written here.
pub use congdan_core::signing::agency_wire::{AttestationPart, SignedPart};

use crate::db::{now_millis, Db, DbError, DbResult};
use crate::identity::device_keys::DeviceKey;
use crate::identity::keys::{ed25519_signer, load_or_create_ed25519};

pub const ATTESTATION_PURPOSE: &str = "key_attestation";

fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(format!("attestation key: {e}"))
}

/// The server's attestation key, created by the first instance that needs it.
pub async fn attestation_signer(db: &Db) -> DbResult<Arc<Ed25519Signer>> {
    let stored = load_or_create_ed25519(db, ATTESTATION_PURPOSE).await?;
    ed25519_signer(stored.first().ok_or_else(|| corrupt("missing"))?)
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` of a fixed-width P-256 signature, as OpenSSL reads it.
pub fn p256_signature_der(raw: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
        let mut v = bytes[start..].to_vec();
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let (r, s) = (integer(&raw[..32]), integer(&raw[32..]));
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend(r);
    out.extend(s);
    out
}

pub fn split(statement: &[u8], key: &PublicKey, key_id: &[u8], der: bool) -> Result<SignedPart, String> {
    if statement.len() <= SIGNATURE_LEN {
        return Err("statement too short".into());
    }
    let (signed, signature) = statement.split_at(statement.len() - SIGNATURE_LEN);
    let raw: [u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| "signature length".to_string())?;
    Ok(SignedPart {
        statement: STANDARD.encode(statement),
        signed_bytes: STANDARD.encode(signed),
        signature: STANDARD.encode(signature),
        signature_der: der.then(|| STANDARD.encode(p256_signature_der(&raw))),
        public_key_pem: public_key_pem(key).map_err(|e| e.to_string())?,
        key_id: hex(key_id),
    })
}

/// Signs "this key belonged to this resident at that time" for `key`, now.
pub async fn attest(db: &Db, key: &DeviceKey) -> Result<AttestationPart, crate::error::ApiError> {
    let signer = attestation_signer(db).await?;
    let attestation = KeyAttestation {
        account_id: key.account_id.clone(),
        device_public_key: key.public_key.clone(),
        device_key_id: key.key_id.clone(),
        registered_at: (key.registered_at_ms / 1000).max(0) as u64,
        revoked_at: key.revoked_at_ms.map(|t| (t / 1000).max(0) as u64),
        issued_at: (now_millis() / 1000).max(0) as u64,
    };
    let statement = attestation.sign(&*signer).map_err(crate::error::ApiError::internal)?;
    let public = signer.public_key();
    let signed = split(&statement, &public, &public.default_key_id(), false).map_err(crate::error::ApiError::internal)?;
    Ok(AttestationPart {
        signed,
        account_id: attestation.account_id,
        device_key_id: hex(&attestation.device_key_id),
        registered_at: attestation.registered_at,
        revoked_at: attestation.revoked_at,
        issued_at: attestation.issued_at,
    })
}
