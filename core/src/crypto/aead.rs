//! AES-256-GCM sealing of small secrets at rest (the session's tokens, the software keystore's
//! device key). Output: 12-byte random nonce ‖ ciphertext ‖ 16-byte tag. The associated data
//! names what is sealed, so a blob sealed for one purpose never opens as another.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

pub const KEY_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no randomness available")]
    NoRandomness,
    #[error("key must be 32 bytes")]
    BadKey,
    #[error("sealed data is damaged, truncated or not ours")]
    Unreadable,
}

/// A 256-bit AES-GCM key held in memory.
pub struct SealingKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// Fresh random key material (to be wrapped by a keystore before it is stored).
pub fn random_key() -> Result<[u8; KEY_LEN], SealError> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new().fill(&mut key).map_err(|_| SealError::NoRandomness)?;
    Ok(key)
}

/// `n` random bytes (state values, PKCE verifiers, DPoP ids).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], SealError> {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(|_| SealError::NoRandomness)?;
    Ok(out)
}

impl SealingKey {
    pub fn new(key: &[u8]) -> Result<SealingKey, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| SealError::BadKey)?;
        Ok(SealingKey { key: LessSafeKey::new(unbound), rng: SystemRandom::new() })
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::NoRandomness)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
            .map_err(|_| SealError::Unreadable)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Unreadable);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unreadable)?;
        let mut buf = body.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(aad), &mut buf).map_err(|_| SealError::Unreadable)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refuse_tampering_other_purpose_other_key() {
        let key = SealingKey::new(&random_key().unwrap()).unwrap();
        let sealed = key.seal(b"tokens", b"purpose-a").unwrap();
        assert_eq!(key.open(&sealed, b"purpose-a").unwrap(), b"tokens");
        assert_ne!(key.seal(b"tokens", b"purpose-a").unwrap(), sealed, "fresh nonce");
        assert_eq!(key.open(&sealed, b"purpose-b"), Err(SealError::Unreadable));
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x80;
            assert_eq!(key.open(&t, b"purpose-a"), Err(SealError::Unreadable), "byte {i}");
        }
        assert_eq!(key.open(&sealed[..20], b"purpose-a"), Err(SealError::Unreadable));
        let other = SealingKey::new(&random_key().unwrap()).unwrap();
        assert_eq!(other.open(&sealed, b"purpose-a"), Err(SealError::Unreadable));
        assert_eq!(SealingKey::new(&[0; 16]).unwrap_err(), SealError::BadKey);
    }
}
