//! The OpenID Connect relying party: the congdan server is a confidential client of the identity
//! provider (VNeID in production, `/dev-idp` locally). Discovery, the JWKS cache, the
//! authorization redirect, the code exchange (`client_secret_basic`, PKCE) and ID token
//! verification, each failure a typed error that names the check and nothing personal.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use congdan_core::crypto::jws::{self, JwkSet, JwsAlgorithm, JwsError};
use congdan_core::identity::national_id;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::config::OidcProviderConfig;

/// `exp` and `iat` tolerate this much clock difference with the provider.
pub const CLOCK_LEEWAY_SECS: i64 = 60;
/// The JWKS is fetched again for an unknown key id at most this often.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Discovery and JWKS are re-read after this long.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Largest response read from the provider.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("ID token is malformed")]
    Malformed,
    #[error("ID token algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("ID token names a key the provider does not publish")]
    UnknownKey,
    #[error("ID token signature does not verify")]
    BadSignature,
    #[error("ID token issuer is not the configured provider")]
    WrongIssuer,
    #[error("ID token audience is not this client")]
    WrongAudience,
    #[error("ID token has expired")]
    Expired,
    #[error("ID token is issued in the future")]
    IssuedInFuture,
    #[error("ID token nonce does not match the login")]
    NonceMismatch,
    #[error("ID token carries no national ID claim")]
    MissingNationalId,
    #[error("ID token national ID is invalid: {0}")]
    InvalidNationalId(national_id::NationalIdError),
}

/// Why a login at the provider failed (logged; the app sees only `access_denied`/`server_error`).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("identity provider unreachable or failing: {0}")]
    Provider(String),
    #[error("identity provider metadata invalid: {0}")]
    Metadata(&'static str),
    #[error("code exchange refused by the provider (HTTP {0})")]
    ExchangeRefused(u16),
    #[error(transparent)]
    IdToken(#[from] IdTokenError),
}

impl OidcError {
    /// The provider (or our link to it) failed, rather than the resident's login.
    pub fn is_server_error(&self) -> bool {
        matches!(self, OidcError::Provider(_) | OidcError::Metadata(_))
    }
}

/// The verified identity a login yields.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub national_id: String,
    pub display_name: String,
    /// Birth date, student status, disability: only what the provider vouches for.
    pub attributes: super::attributes::VerifiedAttributes,
}

impl std::fmt::Debug for VerifiedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifiedIdentity({})", national_id::mask(&self.national_id))
    }
}

/// The pure ID token checks (no network): what the tests forge tokens against.
#[derive(Clone, Debug)]
pub struct IdTokenVerifier {
    pub issuer: String,
    pub client_id: String,
    pub national_id_claim: String,
}

fn audience_contains(aud: &Value, client_id: &str) -> (bool, usize) {
    match aud {
        Value::String(a) => (a == client_id, 1),
        Value::Array(list) => (list.iter().any(|a| a.as_str() == Some(client_id)), list.len()),
        _ => (false, 0),
    }
}

impl IdTokenVerifier {
    /// Checks, in order: form and algorithm, key, signature, `iss`, `aud`/`azp`, `exp`, `iat`,
    /// `nonce`, then the national ID claim.
    pub fn verify(&self, token: &str, keys: &JwkSet, nonce: &str, now_secs: i64) -> Result<VerifiedIdentity, IdTokenError> {
        let parsed = jws::parse(token).map_err(|e| match e {
            JwsError::UnsupportedAlgorithm(_) => IdTokenError::UnsupportedAlgorithm,
            _ => IdTokenError::Malformed,
        })?;
        let key = find_key(keys, parsed.header.kid.as_deref(), parsed.algorithm)?;
        let payload = parsed.verify(&key).map_err(|e| match e {
            JwsError::BadSignature | JwsError::BadKey(_) => IdTokenError::BadSignature,
            _ => IdTokenError::Malformed,
        })?;
        let claims: serde_json::Map<String, Value> =
            serde_json::from_slice(&payload).map_err(|_| IdTokenError::Malformed)?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(IdTokenError::WrongIssuer);
        }
        let (contains, audiences) = audience_contains(claims.get("aud").unwrap_or(&Value::Null), &self.client_id);
        if !contains {
            return Err(IdTokenError::WrongAudience);
        }
        let azp = claims.get("azp").and_then(Value::as_str);
        if (audiences > 1 || azp.is_some()) && azp != Some(self.client_id.as_str()) {
            return Err(IdTokenError::WrongAudience);
        }
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or(IdTokenError::Malformed)?;
        if exp + CLOCK_LEEWAY_SECS <= now_secs {
            return Err(IdTokenError::Expired);
        }
        let iat = claims.get("iat").and_then(Value::as_i64).ok_or(IdTokenError::Malformed)?;
        if iat > now_secs + CLOCK_LEEWAY_SECS {
            return Err(IdTokenError::IssuedInFuture);
        }
        let got_nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
        if !super::dpop::constant_time_eq(got_nonce.as_bytes(), nonce.as_bytes()) || nonce.is_empty() {
            return Err(IdTokenError::NonceMismatch);
        }
        let number = claims
            .get(&self.national_id_claim)
            .and_then(Value::as_str)
            .ok_or(IdTokenError::MissingNationalId)?;
        national_id::validate(number, national_id::current_year()).map_err(IdTokenError::InvalidNationalId)?;
        let display_name = claims
            .get("name")
            .and_then(Value::as_str)
            .map(|n| n.chars().take(200).collect::<String>())
            .unwrap_or_default();
        let attributes = super::attributes::VerifiedAttributes::from_claims(&claims);
        Ok(VerifiedIdentity { national_id: number.to_string(), display_name, attributes })
    }
}

/// The key named by `kid`; without a `kid`, the only key of the algorithm's type.
fn find_key(keys: &JwkSet, kid: Option<&str>, alg: JwsAlgorithm) -> Result<jws::JwsPublicKey, IdTokenError> {
    let kty = match alg {
        JwsAlgorithm::Es256 => "EC",
        JwsAlgorithm::EdDsa => "OKP",
        JwsAlgorithm::Rs256 => "RSA",
    };
    let usable = |k: &&jws::Jwk| k.kty == kty && k.key_use.as_deref().is_none_or(|u| u == "sig");
    let candidates: Vec<&jws::Jwk> = match kid {
        Some(kid) => keys.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).filter(usable).collect(),
        None => keys.keys.iter().filter(usable).collect(),
    };
    match candidates.as_slice() {
        [one] => one.public_key().map_err(|_| IdTokenError::UnknownKey),
        _ => Err(IdTokenError::UnknownKey),
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

struct Cached<T> {
    value: T,
    fetched: Instant,
}

/// The client of one provider: cached metadata, the redirect, the exchange, the verification.
pub struct OidcClient {
    http: reqwest::Client,
    provider: OidcProviderConfig,
    verifier: IdTokenVerifier,
    callback_url: String,
    discovery: Mutex<Option<Cached<Discovery>>>,
    jwks: Mutex<Option<Cached<JwkSet>>>,
}

#[derive(Deserialize)]
struct TokenEndpointResponse {
    id_token: String,
}

impl OidcClient {
    pub fn new(provider: OidcProviderConfig, national_id_claim: String, callback_url: String) -> Result<OidcClient, String> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let verifier = IdTokenVerifier {
            issuer: provider.issuer.clone(),
            client_id: provider.client_id.clone(),
            national_id_claim,
        };
        Ok(OidcClient { http, provider, verifier, callback_url, discovery: Mutex::new(None), jwks: Mutex::new(None) })
    }

    pub fn verifier(&self) -> &IdTokenVerifier {
        &self.verifier
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let response = self.http.get(url).send().await.map_err(|e| OidcError::Provider(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(OidcError::Provider(format!("HTTP {}", response.status().as_u16())));
        }
        let body = read_capped(response).await?;
        serde_json::from_slice(&body).map_err(|_| OidcError::Metadata("unreadable JSON"))
    }

    pub async fn discovery(&self) -> Result<Discovery, OidcError> {
        if let Some(c) = self.discovery.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if c.fetched.elapsed() < METADATA_TTL {
                return Ok(c.value.clone());
            }
        }
        let url = format!("{}/.well-known/openid-configuration", self.provider.issuer.trim_end_matches('/'));
        let doc: Discovery = self.get_json(&url).await?;
        if doc.issuer != self.provider.issuer {
            return Err(OidcError::Metadata("discovery issuer differs from the configured issuer"));
        }
        for endpoint in [&doc.authorization_endpoint, &doc.token_endpoint, &doc.jwks_uri] {
            let parsed = Url::parse(endpoint).map_err(|_| OidcError::Metadata("endpoint is not a URL"))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(OidcError::Metadata("endpoint is not http(s)"));
            }
        }
        *self.discovery.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached { value: doc.clone(), fetched: Instant::now() });
        Ok(doc)
    }

    /// The provider's keys, fetched when missing, stale, or (`refresh`, rate-limited) when a
    /// token named an unknown key.
    async fn jwks(&self, refresh: bool) -> Result<JwkSet, OidcError> {
        if let Some(c) = self.jwks.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let fresh = c.fetched.elapsed() < METADATA_TTL;
            let may_refetch = c.fetched.elapsed() >= JWKS_REFETCH_INTERVAL;
            if fresh && !(refresh && may_refetch) {
                return Ok(c.value.clone());
            }
        }
        let discovery = self.discovery().await?;
        let set: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        *self.jwks.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached { value: set.clone(), fetched: Instant::now() });
        Ok(set)
    }

    /// The provider's authorization URL for one login transaction.
    pub async fn authorization_url(&self, state: &str, nonce: &str, code_challenge: &str) -> Result<String, OidcError> {
        let discovery = self.discovery().await?;
        let mut url = Url::parse(&discovery.authorization_endpoint).map_err(|_| OidcError::Metadata("authorization endpoint"))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.provider.client_id)
            .append_pair("redirect_uri", &self.callback_url)
            .append_pair("scope", "openid profile")
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges the provider's code and verifies the ID token it returns.
    pub async fn finish_login(&self, code: &str, code_verifier: &str, nonce: &str) -> Result<VerifiedIdentity, OidcError> {
        let discovery = self.discovery().await?;
        let credentials = format!(
            "{}:{}",
            form_encode(&self.provider.client_id),
            form_encode(&self.provider.client_secret)
        );
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.callback_url)
            .append_pair("code_verifier", code_verifier)
            .finish();
        let response = self
            .http
            .post(&discovery.token_endpoint)
            .header(reqwest::header::AUTHORIZATION, format!("Basic {}", STANDARD.encode(credentials)))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| OidcError::Provider(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(OidcError::Provider(format!("token endpoint HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(OidcError::ExchangeRefused(status.as_u16()));
        }
        let bytes = read_capped(response).await?;
        let tokens: TokenEndpointResponse =
            serde_json::from_slice(&bytes).map_err(|_| OidcError::Metadata("token response without id_token"))?;
        let now = crate::db::now_millis() / 1000;
        let keys = self.jwks(false).await?;
        match self.verifier.verify(&tokens.id_token, &keys, nonce, now) {
            Err(IdTokenError::UnknownKey) => {
                let keys = self.jwks(true).await?;
                Ok(self.verifier.verify(&tokens.id_token, &keys, nonce, now)?)
            }
            other => Ok(other?),
        }
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-encoded before Basic authentication.
fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, OidcError> {
    if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
        return Err(OidcError::Provider("response too large".into()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| OidcError::Provider(e.without_url().to_string()))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(OidcError::Provider("response too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use congdan_core::crypto::jws::{b64url, Jwk, JwsHeader};
    use congdan_core::crypto::{P256Signer, Signer};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://idp.example/vneid";

    struct Provider {
        signer: P256Signer,
        keys: JwkSet,
    }

    fn provider(kid: &str) -> Provider {
        let signer = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
        let mut jwk = Jwk::from_p256_point(&signer.public_key().bytes).unwrap();
        jwk.kid = Some(kid.into());
        Provider { signer, keys: JwkSet { keys: vec![jwk] } }
    }

    fn claims() -> Value {
        json!({"iss": ISSUER, "aud": "congdan-server", "sub": "s1", "exp": NOW + 300, "iat": NOW,
               "nonce": "n-1", "name": "Nguyễn Thị Lan", "national_id": "079165012345"})
    }

    fn token(p: &Provider, kid: &str, alg: &str, claims: Value) -> String {
        let header = JwsHeader { alg: alg.into(), typ: Some("JWT".into()), kid: Some(kid.into()), jwk: None, crit: None };
        jws::sign_compact(&header, &claims, |m| p.signer.sign(m).map(|s| s.to_vec()).map_err(|e| JwsError::Signing(e.to_string())))
            .unwrap()
    }

    fn verifier() -> IdTokenVerifier {
        IdTokenVerifier { issuer: ISSUER.into(), client_id: "congdan-server".into(), national_id_claim: "national_id".into() }
    }

    fn check(claims: Value) -> Result<VerifiedIdentity, IdTokenError> {
        let p = provider("k1");
        verifier().verify(&token(&p, "k1", "ES256", claims), &p.keys, "n-1", NOW)
    }

    fn with(key: &str, value: Value) -> Value {
        let mut c = claims();
        c[key] = value;
        c
    }

    #[test]
    fn a_good_token_yields_the_identity() {
        let id = check(claims()).unwrap();
        assert_eq!(id.national_id, "079165012345");
        assert_eq!(id.display_name, "Nguyễn Thị Lan");
        assert!(!format!("{id:?}").contains("165012"));
        // Several audiences with azp = us; leeway on exp.
        assert!(check(with("aud", json!(["other", "congdan-server"]))).is_err(), "no azp with several audiences");
        let mut c = with("aud", json!(["other", "congdan-server"]));
        c["azp"] = json!("congdan-server");
        assert!(check(c).is_ok());
        assert!(check(with("exp", json!(NOW - 30))).is_ok(), "within the 60 s leeway");
    }

    #[test]
    fn bad_signature() {
        let p = provider("k1");
        let other = provider("k1");
        assert_eq!(verifier().verify(&token(&other, "k1", "ES256", claims()), &p.keys, "n-1", NOW), Err(IdTokenError::BadSignature));
    }

    #[test]
    fn unknown_key() {
        let p = provider("k1");
        assert_eq!(verifier().verify(&token(&p, "k2", "ES256", claims()), &p.keys, "n-1", NOW), Err(IdTokenError::UnknownKey));
    }

    #[test]
    fn wrong_issuer() {
        assert_eq!(check(with("iss", json!("https://evil.example"))), Err(IdTokenError::WrongIssuer));
    }

    #[test]
    fn wrong_audience() {
        assert_eq!(check(with("aud", json!("another-client"))), Err(IdTokenError::WrongAudience));
        assert_eq!(check(with("azp", json!("another-client"))), Err(IdTokenError::WrongAudience));
    }

    #[test]
    fn expired() {
        assert_eq!(check(with("exp", json!(NOW - 61))), Err(IdTokenError::Expired));
    }

    #[test]
    fn issued_in_future() {
        assert_eq!(check(with("iat", json!(NOW + 120))), Err(IdTokenError::IssuedInFuture));
    }

    #[test]
    fn nonce_mismatch() {
        assert_eq!(check(with("nonce", json!("n-2"))), Err(IdTokenError::NonceMismatch));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("nonce");
        assert_eq!(check(c), Err(IdTokenError::NonceMismatch));
    }

    #[test]
    fn missing_national_id() {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("national_id");
        assert_eq!(check(c), Err(IdTokenError::MissingNationalId));
        assert_eq!(check(with("national_id", json!(79165012345u64))), Err(IdTokenError::MissingNationalId));
    }

    #[test]
    fn invalid_national_id() {
        let e = check(with("national_id", json!("003165012345"))).unwrap_err();
        assert!(matches!(e, IdTokenError::InvalidNationalId(_)));
        assert!(!e.to_string().contains("165012"));
    }

    #[test]
    fn malformed() {
        let p = provider("k1");
        for t in ["", "a.b.c", "x.y"] {
            assert!(matches!(verifier().verify(t, &p.keys, "n-1", NOW), Err(IdTokenError::Malformed | IdTokenError::UnsupportedAlgorithm)));
        }
        let header = b64url(br#"{"alg":"ES256","kid":"k1"}"#);
        let good = token(&p, "k1", "ES256", claims());
        let sig = good.rsplit('.').next().unwrap();
        // A payload that is not JSON, signed: still Malformed after the signature check.
        let body = b64url(b"not json");
        let input = format!("{header}.{body}");
        let s = b64url(&p.signer.sign(input.as_bytes()).unwrap());
        assert_eq!(verifier().verify(&format!("{input}.{s}"), &p.keys, "n-1", NOW), Err(IdTokenError::Malformed));
        assert!(!sig.is_empty());
    }

    #[test]
    fn unsupported_algorithm() {
        let p = provider("k1");
        for alg in ["none", "HS256"] {
            let header = b64url(format!(r#"{{"alg":"{alg}","kid":"k1"}}"#).as_bytes());
            let body = b64url(claims().to_string().as_bytes());
            assert_eq!(verifier().verify(&format!("{header}.{body}."), &p.keys, "n-1", NOW), Err(IdTokenError::UnsupportedAlgorithm));
        }
        // An ES256 key used under an RS256 header: no RSA key with that kid, so unknown.
        assert_eq!(verifier().verify(&token(&p, "k1", "RS256", claims()), &p.keys, "n-1", NOW), Err(IdTokenError::UnknownKey));
    }
}
