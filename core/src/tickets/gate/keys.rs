//! The operator keys a gate trusts: Ed25519 public keys by key id, each with the period in
//! which signatures by it are accepted. Rotation is a new key id: the old key stays listed
//! until the last ticket it signed has expired, then its period ends.

use serde::{Deserialize, Serialize};

use crate::crypto::{Algorithm, KeySet, PublicKey};

/// One trusted operator key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorKey {
    /// The key id as it appears in ticket envelopes (short, e.g. `1`).
    pub key_id: String,
    /// Raw 32-byte Ed25519 public key, base64 (standard alphabet) in JSON.
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    /// Unix seconds from which the gate accepts the key's signatures.
    #[serde(default)]
    pub valid_from: u64,
    /// Unix seconds after which it no longer does; `None`: until further notice.
    #[serde(default)]
    pub valid_until: Option<u64>,
}

impl OperatorKey {
    fn in_force(&self, now: u64) -> bool {
        now >= self.valid_from && self.valid_until.is_none_or(|until| now <= until)
    }
}

/// Why a key list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyListError {
    #[error("operator key {0} is not a 32-byte Ed25519 public key")]
    BadKey(String),
    #[error("operator key id {0:?} must be 1 to 32 bytes")]
    BadKeyId(String),
    #[error("operator key list is not valid JSON: {0}")]
    BadJson(String),
}

/// The trusted operator keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorKeys {
    keys: Vec<OperatorKey>,
}

#[derive(Deserialize, Serialize)]
struct KeyListJson {
    keys: Vec<OperatorKey>,
}

impl OperatorKeys {
    pub fn new(keys: Vec<OperatorKey>) -> Result<OperatorKeys, KeyListError> {
        for k in &keys {
            if k.key_id.is_empty() || k.key_id.len() > crate::crypto::MAX_KEY_ID_LEN {
                return Err(KeyListError::BadKeyId(k.key_id.clone()));
            }
            if k.public_key.len() != 32 {
                return Err(KeyListError::BadKey(k.key_id.clone()));
            }
        }
        Ok(OperatorKeys { keys })
    }

    /// The JSON of `GET /v1/operator/keys`: `{"keys": [{"key_id", "public_key" (base64),
    /// "valid_from", "valid_until"}]}`.
    pub fn from_json(json: &[u8]) -> Result<OperatorKeys, KeyListError> {
        let list: KeyListJson = serde_json::from_slice(json).map_err(|e| KeyListError::BadJson(e.to_string()))?;
        OperatorKeys::new(list.keys)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&KeyListJson { keys: self.keys.clone() }).unwrap_or_default()
    }

    pub fn keys(&self) -> &[OperatorKey] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys in force at `now`, as the [`KeySet`] that `crypto::verify` looks keys up in.
    pub fn at(&self, now: u64) -> KeysAt<'_> {
        KeysAt { keys: self, now }
    }
}

/// [`OperatorKeys`] seen at one moment: a key outside its period is unknown.
pub struct KeysAt<'a> {
    keys: &'a OperatorKeys,
    now: u64,
}

impl KeySet for KeysAt<'_> {
    fn key(&self, algorithm: Algorithm, key_id: &[u8]) -> Option<PublicKey> {
        if algorithm != Algorithm::Ed25519 {
            return None;
        }
        self.keys
            .keys
            .iter()
            .find(|k| k.key_id.as_bytes() == key_id && k.in_force(self.now))
            .map(|k| PublicKey { algorithm: Algorithm::Ed25519, bytes: k.public_key.clone() })
    }
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, from: u64, until: Option<u64>) -> OperatorKey {
        OperatorKey { key_id: id.into(), public_key: vec![7; 32], valid_from: from, valid_until: until }
    }

    #[test]
    fn a_key_is_known_only_inside_its_period() {
        let keys = OperatorKeys::new(vec![key("1", 100, Some(200)), key("2", 150, None)]).unwrap();
        assert!(keys.at(99).key(Algorithm::Ed25519, b"1").is_none());
        assert!(keys.at(100).key(Algorithm::Ed25519, b"1").is_some());
        assert!(keys.at(201).key(Algorithm::Ed25519, b"1").is_none());
        assert!(keys.at(10_000).key(Algorithm::Ed25519, b"2").is_some());
        assert!(keys.at(160).key(Algorithm::EcdsaP256Sha256, b"2").is_none(), "operator keys are Ed25519");
        assert!(keys.at(160).key(Algorithm::Ed25519, b"3").is_none());
    }

    #[test]
    fn json_round_trip_and_bad_keys() {
        let keys = OperatorKeys::new(vec![key("1", 0, None)]).unwrap();
        assert_eq!(OperatorKeys::from_json(keys.to_json().as_bytes()).unwrap(), keys);
        assert!(matches!(OperatorKeys::new(vec![OperatorKey { public_key: vec![1; 31], ..key("1", 0, None) }]), Err(KeyListError::BadKey(_))));
        assert!(matches!(OperatorKeys::new(vec![key("", 0, None)]), Err(KeyListError::BadKeyId(_))));
        assert!(matches!(OperatorKeys::from_json(b"{"), Err(KeyListError::BadJson(_))));
    }
}
