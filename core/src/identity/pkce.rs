//! PKCE (RFC 7636, S256 only) and the login `state`, made on the phone for each login attempt.

use crate::crypto::aead::random_bytes;
use crate::crypto::jws::b64url;
use crate::error::{Error, Result};

/// A code verifier: 32 random bytes in base64url, 43 characters (the RFC's recommendation).
pub fn new_verifier() -> Result<String> {
    Ok(b64url(&random_bytes::<32>().map_err(|e| Error::InvalidConfig(e.to_string()))?))
}

/// The S256 challenge of a verifier: base64url(SHA-256(verifier)).
pub fn challenge(verifier: &str) -> String {
    b64url(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// An unguessable `state` for one login attempt (CSRF protection of the redirect).
pub fn new_state() -> Result<String> {
    Ok(b64url(&random_bytes::<16>().map_err(|e| Error::InvalidConfig(e.to_string()))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_long_random_and_url_safe() {
        let a = new_verifier().unwrap();
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(a, new_verifier().unwrap());
        assert_ne!(new_state().unwrap(), new_state().unwrap());
    }
}
