//! Keys for signed statements: Ed25519 for server and operator keys, P-256 ECDSA (SHA-256,
//! fixed-width r‖s) for device keys, which hardware keystores support. Signing goes through the
//! [`Signer`] trait so a platform keystore can sign without the private key leaving it.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::{StatementError, SIGNATURE_LEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Algorithm {
    Ed25519 = 1,
    EcdsaP256Sha256 = 2,
}

impl Algorithm {
    pub fn from_byte(b: u8) -> Option<Algorithm> {
        match b {
            1 => Some(Algorithm::Ed25519),
            2 => Some(Algorithm::EcdsaP256Sha256),
            _ => None,
        }
    }
}

/// A public key: Ed25519 (32 bytes) or P-256 (65-byte uncompressed SEC1 point).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub algorithm: Algorithm,
    pub bytes: Vec<u8>,
}

impl PublicKey {
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), StatementError> {
        if sig.len() != SIGNATURE_LEN {
            return Err(StatementError::Malformed);
        }
        let alg: &dyn signature::VerificationAlgorithm = match self.algorithm {
            Algorithm::Ed25519 => &signature::ED25519,
            Algorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_FIXED,
        };
        UnparsedPublicKey::new(alg, &self.bytes)
            .verify(message, sig)
            .map_err(|_| StatementError::BadSignature)
    }

    /// The conventional key id: the first 8 bytes of SHA-256 over the public key bytes.
    pub fn default_key_id(&self) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, &self.bytes).as_ref()[..8].to_vec()
    }
}

/// Trusted keys, looked up by algorithm and key id.
pub trait KeySet {
    fn key(&self, algorithm: Algorithm, key_id: &[u8]) -> Option<PublicKey>;
}

/// A fixed list of trusted keys: (key id, public key).
impl KeySet for [(Vec<u8>, PublicKey)] {
    fn key(&self, algorithm: Algorithm, key_id: &[u8]) -> Option<PublicKey> {
        self.iter()
            .find(|(id, k)| id == key_id && k.algorithm == algorithm)
            .map(|(_, k)| k.clone())
    }
}

impl KeySet for Vec<(Vec<u8>, PublicKey)> {
    fn key(&self, algorithm: Algorithm, key_id: &[u8]) -> Option<PublicKey> {
        self.as_slice().key(algorithm, key_id)
    }
}

/// Something that can sign statements: a software key here, a platform keystore on a phone.
pub trait Signer: Send + Sync {
    fn algorithm(&self) -> Algorithm;
    fn key_id(&self) -> &[u8];
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], StatementError>;
}

fn to_array(sig: &[u8]) -> Result<[u8; SIGNATURE_LEN], StatementError> {
    sig.try_into().map_err(|_| StatementError::Signing("unexpected signature length".into()))
}

/// An Ed25519 key held in memory (server and operator keys).
pub struct Ed25519Signer {
    pair: Ed25519KeyPair,
    key_id: Vec<u8>,
}

impl Ed25519Signer {
    pub fn from_pkcs8(pkcs8: &[u8], key_id: Vec<u8>) -> Result<Self, StatementError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| StatementError::Signing(format!("Ed25519 key: {e}")))?;
        Ok(Ed25519Signer { pair, key_id })
    }

    /// From a 32-byte seed (test vectors; keys loaded from a secret store).
    pub fn from_seed(seed: &[u8; 32], key_id: Vec<u8>) -> Result<Self, StatementError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| StatementError::Signing(format!("Ed25519 seed: {e}")))?;
        Ok(Ed25519Signer { pair, key_id })
    }

    pub fn generate_pkcs8() -> Result<Vec<u8>, StatementError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| StatementError::Signing(e.to_string()))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey { algorithm: Algorithm::Ed25519, bytes: self.pair.public_key().as_ref().to_vec() }
    }
}

impl Signer for Ed25519Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Ed25519
    }
    fn key_id(&self) -> &[u8] {
        &self.key_id
    }
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], StatementError> {
        to_array(self.pair.sign(message).as_ref())
    }
}

/// A P-256 key held in memory: the software stand-in for a device's hardware key (CLI, tests).
pub struct P256Signer {
    pair: EcdsaKeyPair,
    key_id: Vec<u8>,
    rng: SystemRandom,
}

impl P256Signer {
    pub fn from_pkcs8(pkcs8: &[u8], key_id: Option<Vec<u8>>) -> Result<Self, StatementError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|e| StatementError::Signing(format!("P-256 key: {e}")))?;
        let public = PublicKey {
            algorithm: Algorithm::EcdsaP256Sha256,
            bytes: pair.public_key().as_ref().to_vec(),
        };
        let key_id = key_id.unwrap_or_else(|| public.default_key_id());
        Ok(P256Signer { pair, key_id, rng })
    }

    pub fn generate_pkcs8() -> Result<Vec<u8>, StatementError> {
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| StatementError::Signing(e.to_string()))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey { algorithm: Algorithm::EcdsaP256Sha256, bytes: self.pair.public_key().as_ref().to_vec() }
    }
}

impl Signer for P256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EcdsaP256Sha256
    }
    fn key_id(&self) -> &[u8] {
        &self.key_id
    }
    fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], StatementError> {
        let sig = self
            .pair
            .sign(&self.rng, message)
            .map_err(|e| StatementError::Signing(e.to_string()))?;
        to_array(sig.as_ref())
    }
}
