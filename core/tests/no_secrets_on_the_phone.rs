//! Nothing secret reaches a log or an error a person could see, on the phone's side too. The real
//! core logs in against the real server through a loopback proxy that records every request; every
//! secret that crossed the wire (access and refresh tokens, authorization codes, PKCE verifiers,
//! login states, the client secret of the server's own provider calls) is then searched for in
//! the log both sides wrote at TRACE, and in the text of every error the core returned.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use congdan_core::identity::dev_browser;
use congdan_core::Error;

mod common;
use common::{Fault, FaultProxy};

mod phone;
use phone::{phone, server_config, try_login, REDIRECT};

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

/// Percent-decoding of a query or form value (`+` is a space in forms).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The secrets in one raw request: credentials in headers, and codes, verifiers, states and
/// refresh tokens in its query string or form body.
fn secrets_in(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut found = Vec::new();
    let mut lines = head.lines();
    let target = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or_default();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("authorization") {
            let credential = value.trim().split_once(' ').map(|(_, c)| c).unwrap_or(value.trim());
            found.push(("credential in an Authorization header".to_string(), credential.to_string()));
        }
    }
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    for pairs in [query, body] {
        for pair in pairs.split('&') {
            let Some((name, value)) = pair.split_once('=') else { continue };
            if matches!(name, "code" | "code_verifier" | "refresh_token" | "state" | "client_secret" | "request_id" | "password") {
                found.push((format!("{name} sent to {}", target.split('?').next().unwrap_or_default()), decode(value)));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_session_leaves_no_secret_in_the_phone_or_server_log_or_errors() {
    let log = captured_log();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = server_config(&tmp.path().join("server"));
    config.identity.access_token_ttl_secs = 2;
    let (proxy, s) = FaultProxy::in_front_of(config).await;
    let wire: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = wire.clone();
    proxy.set_faults(move |raw| {
        seen.lock().unwrap().extend(secrets_in(raw));
        Fault::Pass
    });
    let core = phone(&tmp.path().join("phone"), &proxy.url());
    let mut errors: Vec<String> = Vec::new();
    let mut keep = |e: Error| errors.push(format!("{e} | {e:?}"));

    // Login, an authenticated call, a refresh when the 2-second token has expired, a sync.
    try_login(&core, "lan").await.unwrap();
    core.identity().account().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    core.identity().account().await.unwrap();
    core.sync(&phone::quiet).await.unwrap();

    // The identity credential: renewed, shown, checked at a desk, a changed code refused.
    use congdan_core::identity::credential::Attribute;
    core.credential().refresh().await.unwrap();
    let shown = core.credential().present(&[Attribute::FullName, Attribute::NationalId]).unwrap().text;
    let desk = phone(&tmp.path().join("desk"), &proxy.url());
    desk.credential_verifier().update_keys().await.unwrap();
    assert!(desk.credential_verifier().verify(&shown).unwrap().is_ok());
    let changed = format!("{}{}", &shown[..shown.len() - 2], if shown.ends_with("AA") { "BB" } else { "AA" });
    assert!(desk.credential_verifier().verify(&changed).unwrap().is_err());
    keep(core.credential().present(&[Attribute::AgeOver60]).unwrap_err());

    // Failures a person could see: a wrong password at the provider, a callback that is not
    // ours, a declined login, a code used twice.
    let request = core.identity().login_start(REDIRECT).unwrap();
    if let Err(e) = dev_browser::demo_login(&request.authorize_url, "lan", "not-the-password", REDIRECT).await {
        keep(e);
    }
    let request = core.identity().login_start(REDIRECT).unwrap();
    let callback = dev_browser::demo_login(&request.authorize_url, "lan", "demo", REDIRECT).await.unwrap();
    keep(core.identity().login_finish(&callback.replace("state=", "state=x")).await.unwrap_err());
    keep(core.identity().login_finish(&format!("{REDIRECT}?error=access_denied&state=abc")).await.unwrap_err());
    core.identity().login_finish(&callback).await.unwrap();
    keep(core.identity().login_finish(&callback).await.unwrap_err());

    // Logout; afterwards every call asks for a login.
    core.identity().logout().await.unwrap();
    keep(core.identity().account().await.unwrap_err());
    s.shutdown().await;

    let secrets = wire.lock().unwrap().clone();
    let kinds: std::collections::BTreeSet<&str> = secrets.iter().map(|(what, _)| what.split(' ').next().unwrap()).collect();
    for kind in ["credential", "code", "code_verifier", "refresh_token", "state", "password"] {
        assert!(kinds.contains(kind), "the wire showed a {kind}: {kinds:?}");
    }
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(text.contains("login completed"), "the log was captured");
    assert!(text.contains("TRACE") || text.contains("DEBUG"), "captured at the finest level");
    assert!(errors.len() >= 5, "the errors were kept: {errors:?}");
    let errors = errors.join("\n");
    for (what, secret) in secrets.iter().filter(|(_, v)| v.len() >= 8) {
        assert!(!text.contains(secret.as_str()), "the {what} appears in the log");
        assert!(!errors.contains(secret.as_str()), "the {what} appears in an error: {errors}");
    }
    assert!(!text.contains(&shown[..40]) && !errors.contains(&shown[..40]), "an identity code appears in the log or an error");
    for number in ["079165012345", "165012345", "Nguyễn Thị Lan"] {
        assert!(!text.contains(number), "the national ID number appears in the log");
        assert!(!errors.contains(number), "the national ID number appears in an error");
    }
}
