//! The JSON of the credential endpoints, shared by the server (which writes it) and the core.

use serde::{Deserialize, Serialize};

pub const CREDENTIAL_PATH: &str = "/v1/me/credential";
pub const CREDENTIAL_KEYS_PATH: &str = "/v1/identity/credential-keys";

/// `POST /v1/me/credential`: a fresh credential for the caller's device key, and what only the
/// phone may keep (the salts and values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCredential {
    /// The signed statement `0x40`, base64url without padding.
    pub credential: String,
    pub disclosures: Vec<DisclosureWire>,
    pub expires_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureWire {
    /// `full_name`, `national_id`, `birth_date`, `age_over_18`, `age_over_60`.
    pub attribute: String,
    /// 16 bytes, base64url without padding.
    pub salt: String,
    pub value: String,
}

/// `GET /v1/identity/credential-keys`: the city's public keys, for verifiers to keep offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialKeys {
    pub keys: Vec<CredentialKeyWire>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialKeyWire {
    /// Hex of the statement key id (first 8 bytes of SHA-256 over the public key).
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, base64url without padding.
    pub public_key: String,
}
