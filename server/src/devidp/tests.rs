//! The provider driven through its router, as the server's OIDC client would drive it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use congdan_core::crypto::jws::{self, b64url, JwkSet};
use ring::digest::{digest, SHA256};
use serde_json::Value;
use tower::ServiceExt;

use super::*;

const ISSUER: &str = "http://127.0.0.1:8080/dev-idp";
const CLIENT_ID: &str = "congdan-server";
const CLIENT_SECRET: &str = "s3cret value";
const REDIRECT_URI: &str = "http://127.0.0.1:8080/v1/auth/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const START: u64 = 1_750_000_000;

/// A provider with a clock the test moves by hand.
struct TestIdp {
    router: Router,
    now: Arc<AtomicU64>,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> Option<&str> {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The query parameters of the redirect target.
    fn redirect_params(&self) -> HashMap<String, String> {
        let location = self.location().expect("a redirect");
        let (_, query) = location.split_once('?').expect("a query");
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), percent_decode(v)))
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    fn request_id(&self) -> String {
        let marker = "name=\"request_id\" value=\"";
        let start = self.body.find(marker).expect("a login form") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }
}

fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn encode_form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", authorize::form_urlencode(k), authorize::form_urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn challenge_of(verifier: &str) -> String {
    b64url(digest(&SHA256, verifier.as_bytes()).as_ref())
}

fn basic_auth(id: &str, secret: &str) -> String {
    let raw = format!("{}:{}", authorize::form_urlencode(id), authorize::form_urlencode(secret));
    let standard = b64url(raw.as_bytes()).replace('-', "+").replace('_', "/");
    let padding = "=".repeat((4 - standard.len() % 4) % 4);
    format!("Basic {standard}{padding}")
}

impl TestIdp {
    fn new() -> TestIdp {
        let now = Arc::new(AtomicU64::new(START));
        let clock_now = now.clone();
        let config = DevIdpConfig {
            issuer: ISSUER.into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![REDIRECT_URI.into()],
            id_token_ttl_secs: 300,
        };
        let router: Router = router_with_clock(config, Clock::from_fn(move || clock_now.load(Ordering::SeqCst)));
        TestIdp { router, now }
    }

    fn advance(&self, secs: u64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }

    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        Answer { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, authorization: Option<&str>, pairs: &[(&str, &str)]) -> Answer {
        let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        self.send(request.body(Body::from(encode_form(pairs))).unwrap()).await
    }

    /// `GET /authorize` with the standard parameters, with `overrides` replacing or (with an
    /// empty value) removing some of them.
    async fn authorize(&self, overrides: &[(&str, &str)]) -> Answer {
        let challenge = challenge_of(VERIFIER);
        let mut params: Vec<(&str, String)> = vec![
            ("response_type", "code".into()),
            ("client_id", CLIENT_ID.into()),
            ("redirect_uri", REDIRECT_URI.into()),
            ("scope", "openid profile".into()),
            ("state", "st-123".into()),
            ("nonce", "n-456".into()),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256".into()),
        ];
        for (name, value) in overrides {
            params.retain(|(n, _)| n != name);
            if !value.is_empty() {
                params.push((name, value.to_string()));
            }
        }
        let pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.get(&format!("/authorize?{}", encode_form(&pairs))).await
    }

    async fn login(&self, request_id: &str, username: &str, password: &str) -> Answer {
        self.post_form(
            "/authorize",
            None,
            &[("request_id", request_id), ("username", username), ("password", password), ("action", "login")],
        )
        .await
    }

    /// Authorize and log in as `username`: the code.
    async fn code_for(&self, username: &str) -> String {
        let form = self.authorize(&[]).await;
        assert_eq!(form.status, StatusCode::OK);
        let answer = self.login(&form.request_id(), username, DEMO_PASSWORD).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
        let params = answer.redirect_params();
        assert_eq!(params["state"], "st-123");
        assert_eq!(params["iss"], ISSUER);
        params["code"].clone()
    }

    async fn exchange(&self, code: &str, verifier: &str, secret: &str) -> Answer {
        let auth = basic_auth(CLIENT_ID, secret);
        self.post_form(
            "/token",
            Some(&auth),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn discovery_document_names_the_endpoints() {
    let idp = TestIdp::new();
    let answer = idp.get("/.well-known/openid-configuration").await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.json();
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["authorization_endpoint"], format!("{ISSUER}/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(doc["jwks_uri"], format!("{ISSUER}/jwks"));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(doc["subject_types_supported"], serde_json::json!(["public"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(doc["scopes_supported"], serde_json::json!(["openid", "profile"]));
    let claims = doc["claims_supported"].as_array().unwrap();
    for claim in ["sub", "name", "national_id", "iss", "aud", "exp", "iat", "nonce", "auth_time", "acr"] {
        assert!(claims.iter().any(|c| c == claim), "{claim}");
    }
}

#[tokio::test]
async fn jwks_publishes_one_es256_key() {
    let idp = TestIdp::new();
    let set: JwkSet = serde_json::from_str(&idp.get("/jwks").await.body).unwrap();
    assert_eq!(set.keys.len(), 1);
    let key = &set.keys[0];
    assert_eq!((key.kty.as_str(), key.crv.as_deref()), ("EC", Some("P-256")));
    assert_eq!((key.alg.as_deref(), key.key_use.as_deref()), (Some("ES256"), Some("sig")));
    assert!(key.d.is_none());
    let jws::JwsPublicKey::P256(point) = key.public_key().unwrap() else { panic!("not P-256") };
    assert_eq!(key.kid.as_deref(), Some(b64url(&digest(&SHA256, &point).as_ref()[..8]).as_str()));
}

#[tokio::test]
async fn full_flow_gives_a_verifiable_id_token() {
    let idp = TestIdp::new();
    let form = idp.authorize(&[]).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("Đăng nhập") && form.body.contains("Sign in"));
    for resident in DEMO_RESIDENTS {
        assert!(form.body.contains(resident.username));
    }
    assert_eq!(form.headers[header::CACHE_CONTROL], "no-store");

    idp.advance(5);
    let code = idp.code_for("lan").await;
    idp.advance(2);
    let answer = idp.exchange(&code, VERIFIER, CLIENT_SECRET).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    let tokens = answer.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert_eq!(tokens["scope"], "openid profile");
    assert!(tokens["access_token"].as_str().is_some_and(|t| t.len() >= 43));

    let set: JwkSet = serde_json::from_str(&idp.get("/jwks").await.body).unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let parsed = jws::parse(id_token).unwrap();
    assert_eq!(parsed.header.alg, "ES256");
    assert_eq!(parsed.header.typ.as_deref(), Some("JWT"));
    assert_eq!(parsed.header.kid, set.keys[0].kid);
    let claims: Value = serde_json::from_slice(&parsed.verify(&set.keys[0].public_key().unwrap()).unwrap()).unwrap();
    let now = START + 7;
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["nonce"], "n-456");
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 300);
    assert_eq!(claims["auth_time"], START + 5);
    assert_eq!(claims["national_id"], "079165012345");
    assert_eq!(claims["name"], "Nguyễn Thị Lan");
    assert_eq!(claims["acr"], "vneid-level2");
    assert_eq!(claims["sub"], token::subject_of("lan"));
    assert_eq!(claims["sub"].as_str().unwrap().len(), 22);
}

#[tokio::test]
async fn client_secret_post_works_too() {
    let idp = TestIdp::new();
    let code = idp.code_for("staff").await;
    let answer = idp
        .post_form(
            "/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn wrong_password_shows_the_form_again_then_gives_up() {
    let idp = TestIdp::new();
    let form = idp.authorize(&[]).await;
    let request_id = form.request_id();
    for attempt in 1..MAX_LOGIN_ATTEMPTS {
        let answer = idp.login(&request_id, "lan", "wrong").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.location().is_none());
        assert!(answer.body.contains("Sai tên đăng nhập hoặc mật khẩu"));
        assert!(answer.body.contains(&format!("{} attempts left", MAX_LOGIN_ATTEMPTS - attempt)));
        assert_eq!(answer.request_id(), request_id);
    }
    // The fifth failure drops the request and tells the client.
    let answer = idp.login(&request_id, "nobody", DEMO_PASSWORD).await;
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(answer.redirect_params()["error"], "access_denied");
    // The right password no longer helps.
    assert_eq!(idp.login(&request_id, "lan", DEMO_PASSWORD).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_request_still_works_after_one_wrong_password_and_only_once() {
    let idp = TestIdp::new();
    let request_id = idp.authorize(&[]).await.request_id();
    assert_eq!(idp.login(&request_id, "minh", "nope").await.status, StatusCode::OK);
    // Capital first letter and spaces, as a phone keyboard gives them.
    assert_eq!(idp.login(&request_id, " Minh ", DEMO_PASSWORD).await.status, StatusCode::FOUND);
    assert_eq!(idp.login(&request_id, "minh", DEMO_PASSWORD).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_form_without_action_logs_in() {
    // Scripted browsers (the CLI's --demo-user, the Kotlin tests) post only the three fields.
    let idp = TestIdp::new();
    let request_id = idp.authorize(&[]).await.request_id();
    let answer = idp
        .post_form("/authorize", None, &[("request_id", &request_id), ("username", "lan"), ("password", DEMO_PASSWORD)])
        .await;
    assert_eq!(answer.status, StatusCode::FOUND);
    assert!(answer.redirect_params().contains_key("code"));
}

#[tokio::test]
async fn echoed_username_is_escaped() {
    let idp = TestIdp::new();
    let request_id = idp.authorize(&[]).await.request_id();
    let answer = idp.login(&request_id, "\"><script>alert(1)</script>", "x").await;
    assert!(!answer.body.contains("<script>"));
    assert!(answer.body.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn deny_redirects_with_access_denied() {
    let idp = TestIdp::new();
    let request_id = idp.authorize(&[]).await.request_id();
    let answer = idp
        .post_form("/authorize", None, &[("request_id", &request_id), ("username", ""), ("password", ""), ("action", "deny")])
        .await;
    assert_eq!(answer.status, StatusCode::FOUND);
    let params = answer.redirect_params();
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "st-123");
    assert!(!params.contains_key("code"));
    assert!(answer.location().unwrap().starts_with(REDIRECT_URI));
}

#[tokio::test]
async fn unknown_or_expired_request_id_is_a_dead_end() {
    let idp = TestIdp::new();
    let answer = idp.login("no-such-request", "lan", DEMO_PASSWORD).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.location().is_none());

    let request_id = idp.authorize(&[]).await.request_id();
    idp.advance(LOGIN_REQUEST_TTL_SECS);
    assert_eq!(idp.login(&request_id, "lan", DEMO_PASSWORD).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn replayed_code_is_refused() {
    let idp = TestIdp::new();
    let code = idp.code_for("lan").await;
    assert_eq!(idp.exchange(&code, VERIFIER, CLIENT_SECRET).await.status, StatusCode::OK);
    let again = idp.exchange(&code, VERIFIER, CLIENT_SECRET).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn wrong_pkce_verifier_is_refused_and_burns_the_code() {
    let idp = TestIdp::new();
    let code = idp.code_for("lan").await;
    let wrong = "x".repeat(43);
    let answer = idp.exchange(&code, &wrong, CLIENT_SECRET).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_grant");
    assert_eq!(idp.exchange(&code, VERIFIER, CLIENT_SECRET).await.json()["error"], "invalid_grant");

    // A verifier outside RFC 7636's alphabet or length is a malformed request.
    let code = idp.code_for("lan").await;
    assert_eq!(idp.exchange(&code, "short", CLIENT_SECRET).await.json()["error"], "invalid_request");
}

#[tokio::test]
async fn wrong_client_secret_is_401() {
    let idp = TestIdp::new();
    let code = idp.code_for("lan").await;
    let answer = idp.exchange(&code, VERIFIER, "not the secret").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json()["error"], "invalid_client");
    assert!(answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic"));
    // No client authentication at all.
    let answer = idp
        .post_form("/token", None, &[("grant_type", "authorization_code"), ("code", &code)])
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // The code was not burnt by the unauthenticated attempts.
    assert_eq!(idp.exchange(&code, VERIFIER, CLIENT_SECRET).await.status, StatusCode::OK);
}

#[tokio::test]
async fn token_request_errors_follow_rfc6749() {
    let idp = TestIdp::new();
    let auth = basic_auth(CLIENT_ID, CLIENT_SECRET);
    let answer = idp.post_form("/token", Some(&auth), &[("grant_type", "password")]).await;
    assert_eq!((answer.status, answer.json()["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    let answer = idp.post_form("/token", Some(&auth), &[("grant_type", "authorization_code")]).await;
    assert_eq!(answer.json()["error"], "invalid_request");
    assert!(answer.json()["error_description"].is_string());
    let answer = idp.exchange("no-such-code", VERIFIER, CLIENT_SECRET).await;
    assert_eq!(answer.json()["error"], "invalid_grant");
    // A JSON body is not a token request.
    let request = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, &auth)
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(idp.send(request).await.json()["error"], "invalid_request");
    // Another redirect_uri than at authorize.
    let code = idp.code_for("lan").await;
    let answer = idp
        .post_form(
            "/token",
            Some(&auth),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:8080/other"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(answer.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn unregistered_redirect_uri_or_client_gets_400_without_redirect() {
    let idp = TestIdp::new();
    for overrides in [
        vec![("redirect_uri", "https://evil.example/callback")],
        vec![("redirect_uri", "http://127.0.0.1:8080/v1/auth/callback/")],
        vec![("redirect_uri", "")],
        vec![("client_id", "someone-else")],
        vec![("client_id", "")],
    ] {
        let answer = idp.authorize(&overrides).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{overrides:?}");
        assert!(answer.location().is_none(), "{overrides:?}");
    }
}

#[tokio::test]
async fn other_bad_parameters_redirect_with_an_error() {
    let idp = TestIdp::new();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("response_type", "")], "invalid_request"),
        (&[("scope", "profile")], "invalid_request"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("code_challenge_method", "")], "invalid_request"),
        (&[("code_challenge", "")], "invalid_request"),
        (&[("code_challenge", "too-short")], "invalid_request"),
        (&[("nonce", "")], "invalid_request"),
    ];
    for (overrides, error) in cases {
        let answer = idp.authorize(overrides).await;
        assert_eq!(answer.status, StatusCode::FOUND, "{overrides:?}");
        let params = answer.redirect_params();
        assert_eq!(params["error"], *error, "{overrides:?}");
        assert_eq!(params["state"], "st-123");
        assert!(answer.location().unwrap().starts_with(&format!("{REDIRECT_URI}?")));
    }
}

#[tokio::test]
async fn expired_code_is_refused() {
    let idp = TestIdp::new();
    let code = idp.code_for("operator").await;
    idp.advance(CODE_TTL_SECS);
    let answer = idp.exchange(&code, VERIFIER, CLIENT_SECRET).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_grant");

    // Just inside the lifetime it works.
    let code = idp.code_for("operator").await;
    idp.advance(CODE_TTL_SECS - 1);
    assert_eq!(idp.exchange(&code, VERIFIER, CLIENT_SECRET).await.status, StatusCode::OK);
}

#[test]
fn demo_residents_match_the_identity_contract() {
    let names: Vec<&str> = DEMO_RESIDENTS.iter().map(|r| r.username).collect();
    assert_eq!(names, ["lan", "minh", "staff", "hotline", "operator", "ba", "an", "hoa"]);
    assert!(DEMO_ATTRIBUTES.iter().all(|a| names.contains(&a.username)));
    assert!(super::attribute_claims("lan").is_empty(), "existing residents send no attribute claims");
    assert_eq!(super::attribute_claims("ba")["birthdate"], "1950-05-19");
    assert!(DEMO_RESIDENTS.iter().all(|r| r.national_id.len() == 12 && r.national_id.bytes().all(|b| b.is_ascii_digit())));
    assert_eq!(DEMO_PASSWORD, "demo");
}

#[test]
fn debug_output_hides_the_client_secret() {
    let config = DevIdpConfig {
        issuer: ISSUER.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uris: vec![],
        id_token_ttl_secs: 300,
    };
    assert!(!format!("{config:?}").contains(CLIENT_SECRET));
}
