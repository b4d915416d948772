//! JSON Web Signatures (RFC 7515, compact form), only where an outside standard demands them:
//! OpenID Connect ID tokens and DPoP proofs (RFC 9449). congdan's own statements use the signed
//! statement format instead (see the module above).
//!
//! Accepted algorithms: ES256 (P-256, the device keys and the development provider), EdDSA
//! (Ed25519) and RS256 (what most national identity providers publish). `none`, the HMAC family
//! and anything else are refused before a key is even looked up.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// The largest compact JWS this module parses (an ID token with many claims stays far below).
pub const MAX_JWS_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("JWS algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("JWK is not usable: {0}")]
    BadKey(&'static str),
    #[error("JWS signature does not verify")]
    BadSignature,
    #[error("no key matches the JWS")]
    UnknownKey,
    #[error("signing failed: {0}")]
    Signing(String),
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; anything else (padding, `+`, `/`, whitespace) is refused.
pub fn b64url_decode(text: &str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD.decode(text.as_bytes()).map_err(|_| JwsError::Malformed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlgorithm {
    Es256,
    EdDsa,
    Rs256,
}

impl JwsAlgorithm {
    pub fn parse(name: &str) -> Result<JwsAlgorithm, JwsError> {
        match name {
            "ES256" => Ok(JwsAlgorithm::Es256),
            "EdDSA" => Ok(JwsAlgorithm::EdDsa),
            "RS256" => Ok(JwsAlgorithm::Rs256),
            other => Err(JwsError::UnsupportedAlgorithm(other.chars().take(16).collect())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            JwsAlgorithm::Es256 => "ES256",
            JwsAlgorithm::EdDsa => "EdDSA",
            JwsAlgorithm::Rs256 => "RS256",
        }
    }
}

/// A public JSON Web Key (RFC 7517): EC P-256, OKP Ed25519 or RSA. Private members are never
/// read (a JWK carrying `d` is refused where a public key is expected).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
}

/// A JWK Set (`{"keys": [...]}`), as published at an OpenID provider's `jwks_uri`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// A checked public key, ready to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwsPublicKey {
    /// Uncompressed SEC1 point, 65 bytes.
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

fn coordinate(value: &Option<String>, len: usize) -> Result<Vec<u8>, JwsError> {
    let bytes = b64url_decode(value.as_deref().ok_or(JwsError::BadKey("missing coordinate"))?)
        .map_err(|_| JwsError::BadKey("coordinate is not base64url"))?;
    if bytes.len() != len {
        return Err(JwsError::BadKey("coordinate of the wrong length"));
    }
    Ok(bytes)
}

impl Jwk {
    /// The JWK of a P-256 public key given as an uncompressed SEC1 point (65 bytes).
    pub fn from_p256_point(point: &[u8]) -> Result<Jwk, JwsError> {
        if point.len() != 65 || point[0] != 0x04 {
            return Err(JwsError::BadKey("P-256 key must be an uncompressed point"));
        }
        Ok(Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some(b64url(&point[1..33])),
            y: Some(b64url(&point[33..65])),
            ..Jwk::default()
        })
    }

    pub fn from_ed25519(public: &[u8]) -> Result<Jwk, JwsError> {
        if public.len() != 32 {
            return Err(JwsError::BadKey("Ed25519 key must be 32 bytes"));
        }
        Ok(Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(b64url(public)),
            ..Jwk::default()
        })
    }

    /// Checks the key's members and returns it ready to verify. Private keys are refused.
    pub fn public_key(&self) -> Result<JwsPublicKey, JwsError> {
        if self.d.is_some() {
            return Err(JwsError::BadKey("private key where a public key was expected"));
        }
        match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some("P-256")) => {
                let mut point = vec![0x04];
                point.extend(coordinate(&self.x, 32)?);
                point.extend(coordinate(&self.y, 32)?);
                Ok(JwsPublicKey::P256(point))
            }
            ("OKP", Some("Ed25519")) => Ok(JwsPublicKey::Ed25519(coordinate(&self.x, 32)?)),
            ("RSA", _) => {
                let n = b64url_decode(self.n.as_deref().ok_or(JwsError::BadKey("missing n"))?)?;
                let e = b64url_decode(self.e.as_deref().ok_or(JwsError::BadKey("missing e"))?)?;
                if n.len() < 256 {
                    return Err(JwsError::BadKey("RSA keys below 2048 bits are refused"));
                }
                Ok(JwsPublicKey::Rsa { n, e })
            }
            _ => Err(JwsError::BadKey("unsupported key type")),
        }
    }

    /// The JWK SHA-256 thumbprint (RFC 7638): SHA-256 over the required members in
    /// lexicographic order, no whitespace. This is the `jkt` a DPoP-bound token carries.
    pub fn thumbprint(&self) -> Result<[u8; 32], JwsError> {
        // Validates the members first, so a thumbprint always names a usable key.
        let canonical = match self.public_key()? {
            JwsPublicKey::P256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                self.x.as_deref().unwrap_or_default(),
                self.y.as_deref().unwrap_or_default()
            ),
            JwsPublicKey::Ed25519(_) => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, self.x.as_deref().unwrap_or_default())
            }
            JwsPublicKey::Rsa { .. } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                self.e.as_deref().unwrap_or_default(),
                self.n.as_deref().unwrap_or_default()
            ),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Ok(out)
    }
}

impl JwsPublicKey {
    pub fn verify(&self, algorithm: JwsAlgorithm, message: &[u8], sig: &[u8]) -> Result<(), JwsError> {
        match (self, algorithm) {
            (JwsPublicKey::P256(point), JwsAlgorithm::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .map_err(|_| JwsError::BadSignature)
            }
            (JwsPublicKey::Ed25519(key), JwsAlgorithm::EdDsa) => {
                UnparsedPublicKey::new(&signature::ED25519, key)
                    .verify(message, sig)
                    .map_err(|_| JwsError::BadSignature)
            }
            (JwsPublicKey::Rsa { n, e }, JwsAlgorithm::Rs256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .map_err(|_| JwsError::BadSignature),
            // An algorithm that does not belong to the key: the classic confusion attack.
            _ => Err(JwsError::BadKey("key does not match the JWS algorithm")),
        }
    }
}

/// The protected header members congdan reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsHeader {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<Jwk>,
    /// `crit` members must be understood; congdan understands none, so any is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<serde_json::Value>,
}

/// A compact JWS split into its parts, with only the header decoded: what is needed to choose a
/// key. The payload stays untouched bytes until [`Unverified::verify`] has checked the signature.
#[derive(Debug)]
pub struct Unverified<'a> {
    pub header: JwsHeader,
    pub algorithm: JwsAlgorithm,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
}

/// Splits a compact JWS and reads its protected header. Nothing in the payload is read here.
pub fn parse(token: &str) -> Result<Unverified<'_>, JwsError> {
    if token.len() > MAX_JWS_LEN {
        return Err(JwsError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwsError::Malformed);
    };
    let header: JwsHeader =
        serde_json::from_slice(&b64url_decode(h)?).map_err(|_| JwsError::Malformed)?;
    if header.crit.is_some() {
        return Err(JwsError::Malformed);
    }
    let algorithm = JwsAlgorithm::parse(&header.alg)?;
    let signature = b64url_decode(s)?;
    Ok(Unverified { header, algorithm, signing_input: &token[..h.len() + 1 + p.len()], payload_b64: p, signature })
}

impl Unverified<'_> {
    /// Verifies the signature with `key`, then (only then) decodes the payload.
    pub fn verify(&self, key: &JwsPublicKey) -> Result<Vec<u8>, JwsError> {
        key.verify(self.algorithm, self.signing_input.as_bytes(), &self.signature)?;
        b64url_decode(self.payload_b64)
    }
}

/// Builds a compact JWS: `sign` receives the signing input and returns the raw signature
/// (64 bytes `r‖s` for ES256, as a keystore gives it once converted from DER).
pub fn sign_compact(
    header: &JwsHeader,
    payload: &serde_json::Value,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, JwsError>,
) -> Result<String, JwsError> {
    let header = serde_json::to_vec(header).map_err(|e| JwsError::Signing(e.to_string()))?;
    let payload = serde_json::to_vec(payload).map_err(|e| JwsError::Signing(e.to_string()))?;
    let mut out = format!("{}.{}", b64url(&header), b64url(&payload));
    let signature = sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64url(&signature));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Ed25519Signer, P256Signer, Signer};
    use serde_json::json;

    fn es256_token(signer: &P256Signer, payload: serde_json::Value) -> String {
        let jwk = Jwk::from_p256_point(&signer.public_key().bytes).unwrap();
        let header = JwsHeader { alg: "ES256".into(), typ: Some("dpop+jwt".into()), kid: None, jwk: Some(jwk), crit: None };
        sign_compact(&header, &payload, |m| signer.sign(m).map(|s| s.to_vec()).map_err(|e| JwsError::Signing(e.to_string())))
            .unwrap()
    }

    #[test]
    fn es256_round_trip_and_tampering() {
        let signer = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
        let token = es256_token(&signer, json!({"htm": "POST", "n": 1}));
        let parsed = parse(&token).unwrap();
        let key = parsed.header.jwk.as_ref().unwrap().public_key().unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&parsed.verify(&key).unwrap()).unwrap();
        assert_eq!(payload["htm"], "POST");

        // Any change to the header, the payload or the signature fails.
        let parts: Vec<&str> = token.split('.').collect();
        let other = b64url(br#"{"htm":"GET","n":1}"#);
        let swapped = format!("{}.{}.{}", parts[0], other, parts[2]);
        let p = parse(&swapped).unwrap();
        assert_eq!(p.verify(&key), Err(JwsError::BadSignature));
        let mut sig = b64url_decode(parts[2]).unwrap();
        sig[10] ^= 1;
        let bad = format!("{}.{}.{}", parts[0], parts[1], b64url(&sig));
        assert_eq!(parse(&bad).unwrap().verify(&key), Err(JwsError::BadSignature));
        // Another key.
        let other_signer = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
        let other_key = JwsPublicKey::P256(other_signer.public_key().bytes);
        assert_eq!(parsed.verify(&other_key), Err(JwsError::BadSignature));
    }

    #[test]
    fn refuses_none_hmac_confusion_and_garbage() {
        for alg in ["none", "HS256", "ES384", "RS512", ""] {
            let h = b64url(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
            let t = format!("{h}.{}.", b64url(b"{}"));
            assert!(matches!(parse(&t), Err(JwsError::UnsupportedAlgorithm(_))), "{alg}");
        }
        for t in ["", "a.b", "a.b.c.d", "!!.e30.AA", &"x".repeat(MAX_JWS_LEN + 1)] {
            assert!(parse(t).is_err(), "{t}");
        }
        // crit is refused.
        let h = b64url(br#"{"alg":"ES256","crit":["exp"]}"#);
        assert!(parse(&format!("{h}.e30.AA")).is_err());
        // An Ed25519 key used to "verify" an ES256 token: algorithm/key confusion is refused.
        let ed = Ed25519Signer::from_seed(&[7; 32], b"k".to_vec()).unwrap();
        let p256 = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
        let token = es256_token(&p256, json!({}));
        let parsed = parse(&token).unwrap();
        assert!(matches!(
            parsed.verify(&JwsPublicKey::Ed25519(ed.public_key().bytes)),
            Err(JwsError::BadKey(_))
        ));
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1: the RSA key and its thumbprint.
        let jwk: Jwk = serde_json::from_value(json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"
        }))
        .unwrap();
        assert_eq!(b64url(&jwk.thumbprint().unwrap()), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        // A private JWK is refused as a public key.
        let mut private = jwk.clone();
        private.d = Some("AQAB".into());
        assert!(private.public_key().is_err());
    }

    #[test]
    fn p256_jwk_round_trips_and_checks_lengths() {
        let signer = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
        let point = signer.public_key().bytes;
        let jwk = Jwk::from_p256_point(&point).unwrap();
        assert_eq!(jwk.public_key().unwrap(), JwsPublicKey::P256(point.clone()));
        let mut short = jwk.clone();
        short.x = Some(b64url(&[1; 31]));
        assert!(short.public_key().is_err());
        assert!(Jwk::from_p256_point(&point[..64]).is_err());
    }
}
