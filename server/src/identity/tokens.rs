//! Access tokens (signed statements of type `0x10`, Ed25519) and refresh tokens (32 random
//! bytes, only their SHA-256 stored). Layout in docs/identity.md.

use congdan_core::crypto::jws::{b64url, b64url_decode};
use congdan_core::crypto::{self, FieldKind, FieldSpec, FieldValue, Fields, KeySet, Schema, Signer, StatementError};
use ring::rand::{SecureRandom, SystemRandom};

pub const ACCESS_TOKEN_TYPE: u8 = 0x10;

pub const ACCESS_TOKEN: Schema = Schema {
    statement_type: ACCESS_TOKEN_TYPE,
    name: "access_token",
    fields: &[
        FieldSpec { tag: 1, name: "account", kind: FieldKind::Text, required: true },
        FieldSpec { tag: 2, name: "roles", kind: FieldKind::Text, required: true },
        FieldSpec { tag: 3, name: "jkt", kind: FieldKind::Bytes, required: true },
        FieldSpec { tag: 4, name: "family", kind: FieldKind::Text, required: true },
        FieldSpec { tag: 5, name: "iat", kind: FieldKind::U64, required: true },
        FieldSpec { tag: 6, name: "exp", kind: FieldKind::U64, required: true },
        FieldSpec { tag: 7, name: "jti", kind: FieldKind::Bytes, required: true },
    ],
};

/// An access token longer than this is refused before it is decoded.
pub const MAX_ACCESS_TOKEN_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub account: String,
    pub roles: Vec<String>,
    pub jkt: [u8; 32],
    pub family: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: [u8; 16],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    #[error("access token is not base64url or too long")]
    Encoding,
    #[error("access token names an unknown key")]
    UnknownKey,
    #[error("access token does not verify: {0}")]
    Invalid(StatementError),
    #[error("access token field {0} is malformed")]
    BadField(&'static str),
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], StatementError> {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(|_| StatementError::Signing("random generator failed".into()))?;
    Ok(out)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

/// Signs an access token with the current key.
pub fn issue(claims: &AccessClaims, signer: &dyn Signer) -> Result<String, StatementError> {
    let mut fields = Fields::new();
    fields.insert(1, FieldValue::Text(claims.account.clone()));
    fields.insert(2, FieldValue::Text(claims.roles.join(",")));
    fields.insert(3, FieldValue::Bytes(claims.jkt.to_vec()));
    fields.insert(4, FieldValue::Text(claims.family.clone()));
    fields.insert(5, FieldValue::U64(claims.iat));
    fields.insert(6, FieldValue::U64(claims.exp));
    fields.insert(7, FieldValue::Bytes(claims.jti.to_vec()));
    Ok(b64url(&crypto::sign(&ACCESS_TOKEN, &fields, signer)?))
}

/// Verifies signature and form (not expiry: the caller compares `exp` with its clock).
pub fn verify(token: &str, keys: &dyn KeySet) -> Result<AccessClaims, AccessTokenError> {
    if token.len() > MAX_ACCESS_TOKEN_LEN {
        return Err(AccessTokenError::Encoding);
    }
    let bytes = b64url_decode(token).map_err(|_| AccessTokenError::Encoding)?;
    let verified = crypto::verify(&ACCESS_TOKEN, &bytes, keys).map_err(|e| match e {
        StatementError::UnknownKey => AccessTokenError::UnknownKey,
        other => AccessTokenError::Invalid(other),
    })?;
    let f = &verified.fields;
    let text = |tag: u8, name: &'static str| {
        f.get(&tag).and_then(FieldValue::as_text).map(str::to_string).ok_or(AccessTokenError::BadField(name))
    };
    let bytes_of = |tag: u8, name: &'static str| {
        f.get(&tag).and_then(FieldValue::as_bytes).map(<[u8]>::to_vec).ok_or(AccessTokenError::BadField(name))
    };
    let number = |tag: u8, name: &'static str| f.get(&tag).and_then(FieldValue::as_u64).ok_or(AccessTokenError::BadField(name));
    let roles = text(2, "roles")?;
    Ok(AccessClaims {
        account: text(1, "account")?,
        roles: roles.split(',').filter(|r| !r.is_empty()).map(str::to_string).collect(),
        jkt: bytes_of(3, "jkt")?.try_into().map_err(|_| AccessTokenError::BadField("jkt"))?,
        family: text(4, "family")?,
        iat: number(5, "iat")?,
        exp: number(6, "exp")?,
        jti: bytes_of(7, "jti")?.try_into().map_err(|_| AccessTokenError::BadField("jti"))?,
    })
}

/// A new opaque secret (refresh token, app code, state): 32 random bytes in base64url, and the
/// SHA-256 that is all the database keeps.
pub fn new_secret() -> Result<(String, [u8; 32]), StatementError> {
    let text = b64url(&random_bytes::<32>()?);
    let hash = sha256(text.as_bytes());
    Ok((text, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use congdan_core::crypto::{Ed25519Signer, PublicKey};

    fn claims() -> AccessClaims {
        AccessClaims {
            account: "a-1".into(),
            roles: vec!["resident".into(), "agency:X".into()],
            jkt: [3; 32],
            family: "f-1".into(),
            iat: 100,
            exp: 700,
            jti: [9; 16],
        }
    }

    #[test]
    fn round_trip_tamper_and_foreign_key() {
        let signer = Ed25519Signer::from_seed(&[1; 32], vec![]).unwrap();
        let public = signer.public_key();
        let signer = Ed25519Signer::from_seed(&[1; 32], public.default_key_id()).unwrap();
        let keys: Vec<(Vec<u8>, PublicKey)> = vec![(public.default_key_id(), public)];
        let token = issue(&claims(), &signer).unwrap();
        assert_eq!(verify(&token, &keys).unwrap(), claims());

        let mut raw = b64url_decode(&token).unwrap();
        let n = raw.len();
        raw[n - 70] ^= 1;
        assert!(matches!(verify(&b64url(&raw), &keys), Err(AccessTokenError::Invalid(_))));
        assert_eq!(verify("not base64!", &keys), Err(AccessTokenError::Encoding));

        let foreign = Ed25519Signer::from_seed(&[2; 32], b"other-id".to_vec()).unwrap();
        assert_eq!(verify(&issue(&claims(), &foreign).unwrap(), &keys), Err(AccessTokenError::UnknownKey));
        // Same key id, other key: the signature fails.
        let impostor = Ed25519Signer::from_seed(&[2; 32], keys[0].0.clone()).unwrap();
        assert!(matches!(verify(&issue(&claims(), &impostor).unwrap(), &keys), Err(AccessTokenError::Invalid(_))));
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let (a, ha) = new_secret().unwrap();
        let (b, _) = new_secret().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(ha, sha256(a.as_bytes()));
    }
}
