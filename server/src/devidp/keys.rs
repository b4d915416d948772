//! The provider's ES256 signing key: generated at start-up, published in the JWKS, used to sign
//! ID tokens.

use congdan_core::crypto::jws::{b64url, sign_compact, Jwk, JwkSet, JwsError, JwsHeader};
use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

pub(super) struct ProviderKey {
    pair: EcdsaKeyPair,
    kid: String,
    /// The public JWK as published (with `kid`, `alg`, `use`).
    jwk: Jwk,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("public key not usable: {0}")]
    Public(#[from] JwsError),
}

impl ProviderKey {
    pub(super) fn generate(rng: &SystemRandom) -> Result<ProviderKey, KeyError> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
            .map_err(|_| KeyError::Generate)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
            .map_err(|_| KeyError::Generate)?;
        let point = pair.public_key().as_ref();
        let kid = key_id(point);
        let mut jwk = Jwk::from_p256_point(point)?;
        jwk.kid = Some(kid.clone());
        jwk.alg = Some("ES256".into());
        jwk.key_use = Some("sig".into());
        Ok(ProviderKey { pair, kid, jwk })
    }

    pub(super) fn jwk_set(&self) -> JwkSet {
        JwkSet { keys: vec![self.jwk.clone()] }
    }

    /// Signs `claims` as a JWT: header `{alg: ES256, typ: JWT, kid}`.
    pub(super) fn sign_jwt(&self, claims: &serde_json::Value, rng: &SystemRandom) -> Result<String, JwsError> {
        let header = JwsHeader {
            alg: "ES256".into(),
            typ: Some("JWT".into()),
            kid: Some(self.kid.clone()),
            jwk: None,
            crit: None,
        };
        sign_compact(&header, claims, |input| {
            self.pair
                .sign(rng, input)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| JwsError::Signing("ES256 signing failed".into()))
        })
    }
}

/// Key id: base64url of the first 8 bytes of SHA-256 over the uncompressed public point.
fn key_id(point: &[u8]) -> String {
    b64url(&digest(&SHA256, point).as_ref()[..8])
}
