//! DPoP proofs (RFC 9449), server side: parsing and the checks of docs/identity.md in their
//! order, and the stateless nonces. The replay check (the database) is the caller's last step.

use congdan_core::crypto::jws::{self, b64url, JwsAlgorithm};
use ring::hmac;
use serde::Deserialize;
use url::Url;

use super::tokens::sha256;

/// Nonces change every 5 minutes; the current and the previous window are accepted.
pub const NONCE_WINDOW_SECS: u64 = 300;
/// A proof's `iat` may be this far from the server clock, either way.
pub const MAX_IAT_SKEW_SECS: i64 = 300;
/// Replay records are kept this long: longer than any proof can pass the `iat` check.
pub const REPLAY_WINDOW_SECS: i64 = 2 * MAX_IAT_SKEW_SECS;
const MAX_JTI_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("DPoP proof invalid: {0}")]
    InvalidProof(&'static str),
    #[error("DPoP proof key is not the token's key")]
    KeyMismatch,
    #[error("DPoP proof is for another method")]
    MethodMismatch,
    #[error("DPoP proof is for another URL")]
    UrlMismatch,
    #[error("DPoP proof needs a current nonce")]
    UseNonce,
}

/// The stateless nonce: `<window>.<base64url HMAC-SHA256(secret, window)>`.
pub struct NonceIssuer {
    key: hmac::Key,
}

impl NonceIssuer {
    pub fn new(secret: &[u8]) -> NonceIssuer {
        NonceIssuer { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    pub fn current(&self, now_secs: u64) -> String {
        let window = (now_secs / NONCE_WINDOW_SECS).to_string();
        let tag = hmac::sign(&self.key, window.as_bytes());
        format!("{window}.{}", b64url(tag.as_ref()))
    }

    pub fn is_current(&self, nonce: &str, now_secs: u64) -> bool {
        let Some((window, tag)) = nonce.split_once('.') else { return false };
        let Ok(w) = window.parse::<u64>() else { return false };
        let now_window = now_secs / NONCE_WINDOW_SECS;
        if w != now_window && w + 1 != now_window {
            return false;
        }
        let Ok(tag) = jws::b64url_decode(tag) else { return false };
        // Constant time: hmac::verify compares the tags without an early exit.
        hmac::verify(&self.key, window.as_bytes(), &tag).is_ok()
    }
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// A proof whose signature verified with the key it carries.
#[derive(Debug, Clone)]
pub struct Proof {
    pub jkt: [u8; 32],
    /// The device's public key as JSON (stored with the device).
    pub jwk_json: String,
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    ath: Option<String>,
    nonce: Option<String>,
}

/// What the request says the proof must match.
pub struct Expected<'a> {
    /// The access token's `jkt` (resource requests), or `None` at the token endpoint.
    pub jkt: Option<&'a [u8; 32]>,
    pub method: &'a str,
    /// `{public_url}` + request path.
    pub htu: &'a Url,
    /// The access token the proof must be bound to (`ath`).
    pub access_token: Option<&'a str>,
}

/// Parses a `DPoP` header: an ES256 JWT of type `dpop+jwt` signed by the P-256 `jwk` it carries.
pub fn parse_proof(text: &str) -> Result<Proof, DpopError> {
    let parsed = jws::parse(text).map_err(|_| DpopError::InvalidProof("not a compact JWS with an accepted algorithm"))?;
    if parsed.algorithm != JwsAlgorithm::Es256 {
        return Err(DpopError::InvalidProof("algorithm is not ES256"));
    }
    if parsed.header.typ.as_deref() != Some("dpop+jwt") {
        return Err(DpopError::InvalidProof("typ is not dpop+jwt"));
    }
    let jwk = parsed.header.jwk.as_ref().ok_or(DpopError::InvalidProof("no jwk"))?;
    let key = jwk.public_key().map_err(|_| DpopError::InvalidProof("jwk is not a public key"))?;
    let jkt = jwk.thumbprint().map_err(|_| DpopError::InvalidProof("jwk is not a public key"))?;
    let payload = parsed.verify(&key).map_err(|_| DpopError::InvalidProof("signature"))?;
    let claims: ProofClaims = serde_json::from_slice(&payload).map_err(|_| DpopError::InvalidProof("claims"))?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(DpopError::InvalidProof("jti"));
    }
    // Only the public members, so the stored JWK is exactly the thumbprinted key.
    let mut public = jwk.clone();
    public.kid = None;
    public.alg = None;
    public.key_use = None;
    let jwk_json = serde_json::to_string(&public).map_err(|_| DpopError::InvalidProof("jwk"))?;
    Ok(Proof {
        jkt,
        jwk_json,
        jti: claims.jti,
        htm: claims.htm,
        htu: claims.htu,
        iat: claims.iat,
        ath: claims.ath,
        nonce: claims.nonce,
    })
}

/// Scheme, host, port and path equal; query and fragment ignored.
fn same_target(claimed: &str, expected: &Url) -> bool {
    let Ok(claimed) = Url::parse(claimed) else { return false };
    claimed.scheme() == expected.scheme()
        && claimed.host_str() == expected.host_str()
        && claimed.port_or_known_default() == expected.port_or_known_default()
        && claimed.path() == expected.path()
}

impl Proof {
    /// The checks after parsing, in the documented order (key, method, URL, ath, iat, nonce).
    pub fn check(&self, expected: &Expected<'_>, nonces: &NonceIssuer, now_secs: u64) -> Result<(), DpopError> {
        if let Some(jkt) = expected.jkt {
            if !constant_time_eq(jkt, &self.jkt) {
                return Err(DpopError::KeyMismatch);
            }
        }
        if self.htm != expected.method {
            return Err(DpopError::MethodMismatch);
        }
        if !same_target(&self.htu, expected.htu) {
            return Err(DpopError::UrlMismatch);
        }
        if let Some(token) = expected.access_token {
            let want = b64url(&sha256(token.as_bytes()));
            if !self.ath.as_deref().is_some_and(|ath| constant_time_eq(ath.as_bytes(), want.as_bytes())) {
                return Err(DpopError::InvalidProof("ath"));
            }
        }
        if (self.iat - now_secs as i64).abs() > MAX_IAT_SKEW_SECS {
            return Err(DpopError::InvalidProof("iat too far from the server clock"));
        }
        if !self.nonce.as_deref().is_some_and(|n| nonces.is_current(n, now_secs)) {
            return Err(DpopError::UseNonce);
        }
        Ok(())
    }

    /// The replay store's key: SHA-256(jkt ‖ jti), so one device's jti cannot block another's.
    pub fn replay_key(&self) -> [u8; 32] {
        let mut input = self.jkt.to_vec();
        input.extend_from_slice(self.jti.as_bytes());
        sha256(&input)
    }
}

/// Equality without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use congdan_core::crypto::jws::{Jwk, JwsError, JwsHeader};
    use congdan_core::crypto::{P256Signer, Signer};
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn signer() -> P256Signer {
        P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap()
    }

    fn proof(s: &P256Signer, claims: serde_json::Value, typ: &str) -> String {
        let jwk = Jwk::from_p256_point(&s.public_key().bytes).unwrap();
        let header = JwsHeader { alg: "ES256".into(), typ: Some(typ.into()), kid: None, jwk: Some(jwk), crit: None };
        jws::sign_compact(&header, &claims, |m| s.sign(m).map(|x| x.to_vec()).map_err(|e| JwsError::Signing(e.to_string()))).unwrap()
    }

    #[test]
    fn checks_in_order() {
        let nonces = NonceIssuer::new(&[5; 32]);
        let s = signer();
        let url = Url::parse("http://127.0.0.1:8080/v1/me").unwrap();
        let nonce = nonces.current(NOW);
        let ath = b64url(&sha256(b"tok"));
        let good = json!({"jti": "j1", "htm": "GET", "htu": "http://127.0.0.1:8080/v1/me?x=1", "iat": NOW, "ath": ath, "nonce": nonce});
        let p = parse_proof(&proof(&s, good.clone(), "dpop+jwt")).unwrap();
        let exp = Expected { jkt: Some(&p.jkt), method: "GET", htu: &url, access_token: Some("tok") };
        assert_eq!(p.check(&exp, &nonces, NOW), Ok(()));
        assert_eq!(p.check(&Expected { jkt: Some(&[0; 32]), ..exp }, &nonces, NOW), Err(DpopError::KeyMismatch));
        assert_eq!(p.check(&Expected { method: "POST", ..exp }, &nonces, NOW), Err(DpopError::MethodMismatch));
        let other = Url::parse("http://127.0.0.1:8080/v1/auth/logout").unwrap();
        assert_eq!(p.check(&Expected { htu: &other, ..exp }, &nonces, NOW), Err(DpopError::UrlMismatch));
        let other_port = Url::parse("http://127.0.0.1:8081/v1/me").unwrap();
        assert_eq!(p.check(&Expected { htu: &other_port, ..exp }, &nonces, NOW), Err(DpopError::UrlMismatch));
        assert_eq!(p.check(&Expected { access_token: Some("other"), ..exp }, &nonces, NOW), Err(DpopError::InvalidProof("ath")));
        assert!(matches!(p.check(&exp, &nonces, NOW + 400), Err(DpopError::InvalidProof(_))), "stale iat");
        // Nonce: previous window accepted, older refused, forged refused.
        assert_eq!(p.check(&exp, &nonces, NOW + NONCE_WINDOW_SECS), Ok(()));
        let mut stale = good.clone();
        stale["nonce"] = json!(nonces.current(NOW - 2 * NONCE_WINDOW_SECS));
        let p2 = parse_proof(&proof(&s, stale, "dpop+jwt")).unwrap();
        assert_eq!(p2.check(&exp, &nonces, NOW), Err(DpopError::UseNonce));
        let forged = NonceIssuer::new(&[6; 32]).current(NOW);
        assert!(!nonces.is_current(&forged, NOW));
        assert!(!nonces.is_current("garbage", NOW));
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let s = signer();
        let claims = json!({"jti": "j", "htm": "GET", "htu": "http://h/", "iat": NOW});
        assert!(parse_proof(&proof(&s, claims.clone(), "jwt")).is_err(), "typ");
        assert!(parse_proof(&proof(&s, json!({"htm": "GET"}), "dpop+jwt")).is_err(), "claims missing");
        let good = proof(&s, claims, "dpop+jwt");
        let parts: Vec<&str> = good.split('.').collect();
        let swapped = format!("{}.{}.{}", parts[0], b64url(br#"{"jti":"k","htm":"GET","htu":"http://h/","iat":1}"#), parts[2]);
        assert_eq!(parse_proof(&swapped).unwrap_err(), DpopError::InvalidProof("signature"));
        assert!(parse_proof("").is_err());
        assert!(parse_proof("a.b.c").is_err());
    }
}
