//! The one signed-statement format (DESIGN §3). Tickets, rotating ticket proofs, identity
//! credentials, signature decisions, dossier signatures and server attestations are all signed
//! statements; each capability only defines its fields (a [`Schema`]). Byte layout and test
//! vectors: `docs/signed-statements.md`.
//!
//! Verification order is the point of this module: [`verify`] checks the envelope, finds the key,
//! and verifies the signature over the exact bytes received before it reads a single field.

pub mod aead;
#[cfg(test)]
pub(crate) mod doc_vectors;
mod encoding;
pub mod jws;
mod keys;

pub use encoding::{FieldKind, FieldSpec, FieldValue, Fields, Schema};
pub use keys::{Algorithm, Ed25519Signer, KeySet, P256Signer, PublicKey, Signer};

pub(crate) use encoding::{decode_fields, read_varint, write_varint};

/// Lower-case hexadecimal, as the project writes hashes, ids and wrapped keys.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reverses [`hex`]; `None` for an odd length or anything that is not hexadecimal.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// First bytes of every statement.
pub const MAGIC: [u8; 2] = *b"CD";
/// The only envelope version so far.
pub const VERSION: u8 = 1;
/// Both algorithms produce 64-byte signatures (Ed25519; P-256 as fixed-width r‖s).
pub const SIGNATURE_LEN: usize = 64;
pub const MAX_KEY_ID_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("not a signed statement or truncated")]
    Malformed,
    #[error("unsupported statement version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown signature algorithm {0}")]
    UnknownAlgorithm(u8),
    #[error("statement of type {found}, expected {expected}")]
    WrongType { expected: u8, found: u8 },
    #[error("no trusted key with this id")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
    #[error("fields are not in canonical form: {0}")]
    NonCanonical(&'static str),
    #[error("field {0} is missing")]
    MissingField(&'static str),
    #[error("field tag {0} is not part of this statement type")]
    UnknownField(u8),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A statement whose signature has been verified with a trusted key.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub statement_type: u8,
    pub algorithm: Algorithm,
    pub key_id: Vec<u8>,
    pub fields: Fields,
}

/// Encodes `fields` as a statement of `schema`'s type and signs it with `signer`.
pub fn sign(schema: &Schema, fields: &Fields, signer: &dyn Signer) -> Result<Vec<u8>, StatementError> {
    schema.check(fields)?;
    let key_id = signer.key_id();
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
        return Err(StatementError::Signing("key id must be 1 to 32 bytes".into()));
    }
    let body = encoding::encode_fields(fields);
    let mut out = Vec::with_capacity(6 + key_id.len() + 5 + body.len() + SIGNATURE_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(schema.statement_type);
    out.push(signer.algorithm() as u8);
    out.push(key_id.len() as u8);
    out.extend_from_slice(key_id);
    write_varint(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    let signature = signer.sign(&out)?;
    out.extend_from_slice(&signature);
    Ok(out)
}

/// Verifies a statement of `schema`'s type against trusted `keys`, then decodes its fields.
pub fn verify(schema: &Schema, bytes: &[u8], keys: &dyn KeySet) -> Result<Verified, StatementError> {
    // 1. The envelope: only lengths and identifiers, nothing the statement asserts.
    if bytes.len() < 6 + 1 + 1 + SIGNATURE_LEN || bytes[..2] != MAGIC {
        return Err(StatementError::Malformed);
    }
    if bytes[2] != VERSION {
        return Err(StatementError::UnsupportedVersion(bytes[2]));
    }
    let statement_type = bytes[3];
    if statement_type != schema.statement_type {
        return Err(StatementError::WrongType { expected: schema.statement_type, found: statement_type });
    }
    let algorithm = Algorithm::from_byte(bytes[4]).ok_or(StatementError::UnknownAlgorithm(bytes[4]))?;
    let key_id_len = bytes[5] as usize;
    if key_id_len == 0 || key_id_len > MAX_KEY_ID_LEN {
        return Err(StatementError::Malformed);
    }
    let key_id = bytes.get(6..6 + key_id_len).ok_or(StatementError::Malformed)?;
    let mut pos = 6 + key_id_len;
    let body_len = read_varint(bytes, &mut pos)? as usize;
    let signed_len = pos.checked_add(body_len).ok_or(StatementError::Malformed)?;
    if bytes.len() != signed_len.checked_add(SIGNATURE_LEN).ok_or(StatementError::Malformed)? {
        return Err(StatementError::Malformed);
    }
    // 2. The key and the signature over every byte before it.
    let key = keys.key(algorithm, key_id).ok_or(StatementError::UnknownKey)?;
    key.verify(&bytes[..signed_len], &bytes[signed_len..])?;
    // 3. Only now the fields.
    let fields = encoding::decode_fields(&bytes[pos..signed_len], schema)?;
    schema.check(&fields)?;
    Ok(Verified { statement_type, algorithm, key_id: key_id.to_vec(), fields })
}

#[cfg(test)]
mod tests;
