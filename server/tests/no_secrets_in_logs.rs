//! Nothing secret reaches the log, even at TRACE: a whole login through the development provider,
//! a refresh, an authenticated request, a few failures and a logout, then the captured log text
//! is searched for every token, code, verifier, the client secret and the national ID number; so
//! is the body of every error answer the session got.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::identity::{self as id, Device};
use common::Backend;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One subscriber for the whole test binary, at TRACE, with the server's own filter rules.
fn captured_log() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter(congdan_server::logging::filter("trace"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

on_both_backends!(a_whole_session_leaves_no_secret_in_the_log, |b: Backend| async move {
    let log = captured_log();
    let s = common::start(&b.url).await;
    let base = s.url();
    let mut secrets: Vec<(String, &str)> = Vec::new();
    // Every error answer's whole body, searched like the log at the end.
    let mut bodies = String::new();

    // The browser part, keeping the provider's code from the callback URL.
    let app_code = id::browser_login(&base, "lan").await;
    secrets.push((app_code.code.clone(), "app code"));
    secrets.push((app_code.verifier.clone(), "app PKCE verifier"));
    secrets.push((app_code.provider_code.clone(), "provider code"));
    secrets.push((app_code.server_state.clone(), "server state at the provider"));
    let client_secret = s.state.identity.dev_idp.as_ref().unwrap().client_secret.clone();
    secrets.push((client_secret, "client secret"));

    // A failure first: a wrong verifier burns a code.
    let burnt = id::browser_login(&base, "lan").await;
    secrets.push((burnt.code.clone(), "burnt app code"));
    let device = Device::new();
    let mut nonce = None;
    let wrong = id::AppCode { code: burnt.code.clone(), verifier: "w".repeat(43), redirect_uri: burnt.redirect_uri.clone(), provider_code: String::new(), server_state: String::new() };
    assert_eq!(refused(&mut bodies, id::redeem(&base, &device, &mut nonce, &wrong).await).await, "pkce_mismatch");

    let r = id::redeem(&base, &device, &mut nonce, &app_code).await;
    assert_eq!(r.status(), 200);
    let tokens: congdan_core::identity::wire::TokenResponse = r.json().await.unwrap();
    let mut session = id::Session { base: base.clone(), device, tokens, nonce };
    secrets.push((session.tokens.access_token.clone(), "access token"));
    secrets.push((session.tokens.refresh_token.clone(), "refresh token"));
    // The burnt code again (the good one again would revoke this session).
    let burnt_again = id::AppCode { code: burnt.code.clone(), verifier: burnt.verifier.clone(), redirect_uri: burnt.redirect_uri.clone(), provider_code: String::new(), server_state: String::new() };
    assert_eq!(refused(&mut bodies, id::redeem(&base, &session.device, &mut session.nonce, &burnt_again).await).await, "invalid_grant");

    assert_eq!(session.request("GET", "/v1/me", None).await.status(), 200);
    let r = session.refresh().await;
    assert_eq!(r.status(), 200);
    session.tokens = r.json().await.unwrap();
    secrets.push((session.tokens.access_token.clone(), "refreshed access token"));
    secrets.push((session.tokens.refresh_token.clone(), "refreshed refresh token"));
    assert_eq!(session.request("GET", "/v1/me", None).await.status(), 200);

    // More failures: a token with another device, a refresh from another device, garbage.
    let mut thief = id::Session { base: base.clone(), device: Device::new(), tokens: session.tokens.clone(), nonce: None };
    assert_eq!(refused(&mut bodies, thief.request("GET", "/v1/me", None).await).await, "dpop_key_mismatch");
    assert_eq!(refused(&mut bodies, thief.refresh().await).await, "dpop_key_mismatch");
    let r = id::http().get(format!("{base}/v1/me")).header("Authorization", "DPoP not-a-token").send().await.unwrap();
    assert_eq!(refused(&mut bodies, r).await, "invalid_token");

    assert_eq!(session.request("POST", "/v1/auth/logout", None).await.status(), 204);
    assert_eq!(refused(&mut bodies, session.request("GET", "/v1/me", None).await).await, "token_revoked");
    s.shutdown().await;

    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(text.contains("login completed"), "the log was captured");
    assert!(text.contains("TRACE") || text.contains("DEBUG"), "captured at the finest level");
    for (secret, what) in &secrets {
        assert!(!text.contains(secret.as_str()), "the {what} appears in the log");
    }
    assert!(!text.contains("079165012345"), "the national ID number appears in the log");
    assert!(!text.contains("165012345"), "part of the national ID number appears in the log");
    assert!(bodies.matches("\"code\"").count() >= 6, "the error answers were kept: {bodies}");
    for (secret, what) in &secrets {
        assert!(!bodies.contains(secret.as_str()), "the {what} appears in an error message");
    }
    assert!(!bodies.contains("165012345"), "the national ID number appears in an error message");
});

/// The error code of a refused request; its whole body is kept in `bodies` for the secret search.
async fn refused(bodies: &mut String, r: reqwest::Response) -> String {
    let text = r.text().await.unwrap();
    bodies.push_str(&text);
    bodies.push('\n');
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}
