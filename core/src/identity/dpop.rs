//! DPoP proofs (RFC 9449) made with the device key. Every request to the server carries a fresh
//! proof: a small ES256 JWT naming the method and URL, signed by the keystore, so a stolen access
//! or refresh token is useless without the device.

use std::sync::Arc;

use reqwest::header::{HeaderName, AUTHORIZATION};
use serde_json::json;
use url::Url;

use crate::crypto::aead::random_bytes;
use crate::crypto::jws::{self, b64url, Jwk, JwsError, JwsHeader};
use crate::error::{Error, Result};
use crate::platform::Keystore;
use crate::sync::client::{Method, RequestAuth};

/// The device key as the server sees it: its public JWK and RFC 7638 thumbprint.
pub struct DeviceKey {
    keystore: Arc<dyn Keystore>,
    jwk: Jwk,
    thumbprint: [u8; 32],
}

fn keystore_error(e: impl std::fmt::Display) -> Error {
    Error::Platform { service: "keystore", message: e.to_string() }
}

impl DeviceKey {
    /// Asks the keystore for the device key (creating it on first use).
    pub fn load(keystore: Arc<dyn Keystore>) -> Result<DeviceKey> {
        let point = keystore.device_public_key().map_err(keystore_error)?;
        let jwk = Jwk::from_p256_point(&point).map_err(keystore_error)?;
        let thumbprint = jwk.thumbprint().map_err(keystore_error)?;
        Ok(DeviceKey { keystore, jwk, thumbprint })
    }

    /// The RFC 7638 thumbprint (`jkt`) in base64url.
    pub fn thumbprint(&self) -> String {
        b64url(&self.thumbprint)
    }

    /// A proof for one request. `access_token` adds `ath` (its SHA-256), as resource requests
    /// need; the token endpoint gets none.
    pub fn proof(
        &self,
        method: &Method,
        url: &Url,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now_secs: i64,
    ) -> Result<String> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let jti = b64url(&random_bytes::<16>().map_err(|e| Error::InvalidConfig(e.to_string()))?);
        let mut claims = json!({"jti": jti, "htm": method.as_str(), "htu": htu.as_str(), "iat": now_secs});
        if let Some(token) = access_token {
            claims["ath"] = json!(b64url(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref()));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let header = JwsHeader {
            alg: "ES256".into(),
            typ: Some("dpop+jwt".into()),
            kid: None,
            jwk: Some(self.jwk.clone()),
            crit: None,
        };
        jws::sign_compact(&header, &claims, |input| {
            self.keystore.sign(input).map_err(|e| JwsError::Signing(e.to_string()))
        })
        .map_err(keystore_error)
    }
}

/// Authentication of one request: a DPoP proof, and the access token when there is one.
pub(crate) struct DpopAuth<'a> {
    pub key: &'a DeviceKey,
    pub access_token: Option<&'a str>,
    /// Server clock minus phone clock, so `iat` is in the server's time.
    pub clock_offset_ms: i64,
}

impl RequestAuth for DpopAuth<'_> {
    fn headers(&self, method: &Method, url: &Url, nonce: Option<&str>) -> Result<Vec<(HeaderName, String)>> {
        let now_secs = (crate::store::now_millis() + self.clock_offset_ms).div_euclid(1000);
        let proof = self.key.proof(method, url, self.access_token, nonce, now_secs)?;
        let mut headers = vec![(HeaderName::from_static("dpop"), proof)];
        if let Some(token) = self.access_token {
            headers.push((AUTHORIZATION, format!("DPoP {token}")));
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::SoftwareKeystore;

    #[test]
    fn proof_is_a_verifiable_dpop_jwt_for_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let key = DeviceKey::load(Arc::new(SoftwareKeystore::open(dir.path()).unwrap())).unwrap();
        let url = Url::parse("http://127.0.0.1:8080/v1/me?x=1#f").unwrap();
        let proof = key.proof(&Method::GET, &url, Some("tok"), Some("n1"), 1_700_000_000).unwrap();
        let parsed = jws::parse(&proof).unwrap();
        assert_eq!(parsed.header.typ.as_deref(), Some("dpop+jwt"));
        let jwk = parsed.header.jwk.clone().unwrap();
        assert_eq!(b64url(&jwk.thumbprint().unwrap()), key.thumbprint());
        let claims: serde_json::Value = serde_json::from_slice(&parsed.verify(&jwk.public_key().unwrap()).unwrap()).unwrap();
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "http://127.0.0.1:8080/v1/me", "no query or fragment");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["nonce"], "n1");
        assert_eq!(claims["ath"], b64url(ring::digest::digest(&ring::digest::SHA256, b"tok").as_ref()));
        let again = key.proof(&Method::GET, &url, None, None, 1).unwrap();
        let claims2: serde_json::Value =
            serde_json::from_slice(&jws::parse(&again).unwrap().verify(&jwk.public_key().unwrap()).unwrap()).unwrap();
        assert_ne!(claims["jti"], claims2["jti"], "every proof has its own jti");
        assert!(claims2.get("ath").is_none() && claims2.get("nonce").is_none());
    }
}
