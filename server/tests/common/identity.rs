//! Test drivers for identity: a device key that makes DPoP proofs, the whole login through the
//! development provider as a browser and the app would do it, and authenticated requests.

use congdan_core::crypto::jws::{self, b64url, Jwk, JwsError, JwsHeader};
use congdan_core::crypto::{P256Signer, Signer};
use congdan_core::identity::wire::TokenResponse;
use serde_json::{json, Value};

pub const APP_REDIRECT: &str = "http://127.0.0.1:53682/callback";

pub fn sha256_b64(data: &[u8]) -> String {
    b64url(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A phone's device key (software P-256), making DPoP proofs.
pub struct Device {
    /// The key itself: DPoP proofs, and statements it signs as the device key (issue 6).
    pub signer: P256Signer,
    pub jwk: Jwk,
}

impl Device {
    pub fn new() -> Device {
        let signer = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
        let jwk = Jwk::from_p256_point(&signer.public_key().bytes).unwrap();
        Device { signer, jwk }
    }

    pub fn jkt(&self) -> String {
        b64url(&self.jwk.thumbprint().unwrap())
    }

    /// A proof with exactly these claims.
    pub fn proof_with(&self, claims: Value) -> String {
        let header = JwsHeader { alg: "ES256".into(), typ: Some("dpop+jwt".into()), kid: None, jwk: Some(self.jwk.clone()), crit: None };
        jws::sign_compact(&header, &claims, |m| self.signer.sign(m).map(|s| s.to_vec()).map_err(|e| JwsError::Signing(e.to_string())))
            .unwrap()
    }

    /// The claims of a good proof for `method` `url`.
    pub fn claims(&self, method: &str, url: &str, access_token: Option<&str>, nonce: Option<&str>) -> Value {
        let jti = b64url(&rand_bytes());
        let mut claims = json!({"jti": jti, "htm": method, "htu": url, "iat": now_secs()});
        if let Some(t) = access_token {
            claims["ath"] = json!(sha256_b64(t.as_bytes()));
        }
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        claims
    }

    pub fn proof(&self, method: &str, url: &str, access_token: Option<&str>, nonce: Option<&str>) -> String {
        self.proof_with(self.claims(method, url, access_token, nonce))
    }
}

fn rand_bytes() -> [u8; 16] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    b
}

/// An HTTP client that never follows redirects (the test reads each Location itself).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").unwrap_or_else(|| panic!("no Location on {}", r.status())).to_str().unwrap().to_string()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).unwrap();
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// What the app holds after the browser part of a login: the code and the PKCE verifier.
pub struct AppCode {
    pub code: String,
    pub verifier: String,
    pub redirect_uri: String,
    /// The provider's code and the server's own state, seen in the callback URL (secrets too).
    pub provider_code: String,
    pub server_state: String,
}

/// `scheme://host:port` of a URL.
fn origin(url: &str) -> String {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let end = url[after_scheme..].find('/').map(|i| after_scheme + i).unwrap_or(url.len());
    url[..end].to_string()
}

/// The browser part: `/v1/auth/authorize` -> `/dev-idp` login form -> callback -> app redirect.
pub async fn browser_login(base: &str, username: &str) -> AppCode {
    let verifier = b64url(&[rand_bytes(), rand_bytes()].concat());
    let app_state = b64url(&rand_bytes());
    let http = http();
    let r = http
        .get(format!("{base}/v1/auth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "congdan-app"),
            ("redirect_uri", APP_REDIRECT),
            ("state", app_state.as_str()),
            ("code_challenge", sha256_b64(verifier.as_bytes()).as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "authorize: {}", r.text().await.unwrap());
    let to_provider = location(&r);
    let page = http.get(&to_provider).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let marker = "name=\"request_id\" value=\"";
    let start = html.find(marker).expect("login form has a request_id") + marker.len();
    let request_id = &html[start..start + html[start..].find('"').unwrap()];
    // The form posts where the provider says, as a browser would: the provider may live elsewhere.
    let action_marker = "<form method=\"post\" action=\"";
    let action_start = html.find(action_marker).expect("login form has an action") + action_marker.len();
    let action = &html[action_start..action_start + html[action_start..].find('"').unwrap()];
    let action = if action.starts_with("http") { action.to_string() } else { format!("{}{action}", origin(&to_provider)) };
    let r = http
        .post(action)
        .form(&[("request_id", request_id), ("username", username), ("password", "demo"), ("action", "login")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "provider login");
    let callback = location(&r);
    assert!(callback.starts_with(&format!("{base}/v1/auth/callback")), "{callback}");
    let r = http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 302, "callback: {}", r.text().await.unwrap());
    let to_app = location(&r);
    assert!(to_app.starts_with(APP_REDIRECT), "{to_app}");
    assert_eq!(query_param(&to_app, "state").as_deref(), Some(app_state.as_str()), "the app's state comes back");
    let code = query_param(&to_app, "code").unwrap_or_else(|| panic!("no code: {to_app}"));
    AppCode {
        code,
        verifier,
        redirect_uri: APP_REDIRECT.into(),
        provider_code: query_param(&callback, "code").unwrap(),
        server_state: query_param(&callback, "state").unwrap(),
    }
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Form(&'a [(&'a str, &'a str)]),
    Json(&'a Value),
    /// A command: JSON with its `Idempotency-Key`.
    Command(&'a Value, &'a str),
}

/// One request with a DPoP proof, retried once with the nonce a `use_dpop_nonce` answer gives.
/// `nonce` is the phone's remembered nonce; it is updated from every answer.
pub async fn send_with_proof(
    base: &str,
    device: &Device,
    nonce: &mut Option<String>,
    method: &str,
    path: &str,
    access_token: Option<&str>,
    body: Body<'_>,
) -> reqwest::Response {
    send_with_proof_and_headers(base, device, nonce, method, path, access_token, body, &[]).await
}

/// [`send_with_proof`] with more request headers (an `X-Forwarded-For` a balancer would add).
#[allow(clippy::too_many_arguments)]
pub async fn send_with_proof_and_headers(
    base: &str,
    device: &Device,
    nonce: &mut Option<String>,
    method: &str,
    path: &str,
    access_token: Option<&str>,
    body: Body<'_>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let url = format!("{base}{path}");
    for attempt in 0..2 {
        let proof = device.proof(method, &url, access_token, nonce.as_deref());
        let mut req = http().request(method.parse().unwrap(), &url).header("DPoP", proof);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(t) = access_token {
            req = req.header("Authorization", format!("DPoP {t}"));
        }
        req = match &body {
            Body::Empty => req,
            Body::Form(f) => req.form(f),
            Body::Json(j) => req.json(j),
            Body::Command(j, key) => req.json(j).header("Idempotency-Key", format!("\"{key}\"")),
        };
        let r = req.send().await.unwrap();
        if let Some(n) = r.headers().get("dpop-nonce") {
            *nonce = Some(n.to_str().unwrap().to_string());
        }
        if r.status() == 401 && attempt == 0 {
            let has_nonce_challenge = r
                .headers()
                .get("www-authenticate")
                .is_some_and(|v| v.to_str().unwrap().contains("use_dpop_nonce"));
            if has_nonce_challenge {
                continue;
            }
        }
        return r;
    }
    unreachable!()
}

/// A logged-in phone: its key, its tokens, its current nonce.
pub struct Session {
    pub base: String,
    pub device: Device,
    pub tokens: TokenResponse,
    pub nonce: Option<String>,
}

impl Session {
    pub async fn request(&mut self, method: &str, path: &str, json_body: Option<&Value>) -> reqwest::Response {
        let token = self.tokens.access_token.clone();
        let body = json_body.map(Body::Json).unwrap_or(Body::Empty);
        send_with_proof(&self.base, &self.device, &mut self.nonce, method, path, Some(&token), body).await
    }

    /// Sends a command (`POST`) with its idempotency key.
    pub async fn command(&mut self, path: &str, body: &Value, key: &str) -> reqwest::Response {
        let token = self.tokens.access_token.clone();
        send_with_proof(&self.base, &self.device, &mut self.nonce, "POST", path, Some(&token), Body::Command(body, key)).await
    }

    /// Refreshes with the current refresh token; the new tokens replace the old on success.
    pub async fn refresh(&mut self) -> reqwest::Response {
        let rt = self.tokens.refresh_token.clone();
        let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str()), ("client_id", "congdan-app")];
        send_with_proof(&self.base, &self.device, &mut self.nonce, "POST", "/v1/auth/token", None, Body::Form(&form)).await
    }
}

/// The token request of the authorization code grant.
pub async fn redeem(base: &str, device: &Device, nonce: &mut Option<String>, code: &AppCode) -> reqwest::Response {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.code.as_str()),
        ("code_verifier", code.verifier.as_str()),
        ("redirect_uri", code.redirect_uri.as_str()),
        ("client_id", "congdan-app"),
    ];
    send_with_proof(base, device, nonce, "POST", "/v1/auth/token", None, Body::Form(&form)).await
}

/// The whole login of a demo user, ending with tokens bound to a fresh device key.
pub async fn login(base: &str, username: &str) -> Session {
    let code = browser_login(base, username).await;
    let device = Device::new();
    let mut nonce = None;
    let r = redeem(base, &device, &mut nonce, &code).await;
    assert_eq!(r.status(), 200, "token: {}", r.text().await.unwrap());
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let tokens: TokenResponse = r.json().await.unwrap();
    Session { base: base.to_string(), device, tokens, nonce }
}

/// The error code of a JSON error response.
pub async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}
