//! Identity end to end (docs/identity.md), on SQLite and PostgreSQL: the login through the
//! development provider, `/v1/me`, every documented attack refused with its own code, refresh
//! rotation with grace and reuse detection, logout, roles, the account feed, the rate limit, and
//! two instances on one PostgreSQL.

mod common;

use common::identity::{self as id, Device, Session};
use common::Backend;
use congdan_core::crypto::Ed25519Signer;
use congdan_core::identity::wire::AccountInfo;
use congdan_server::identity::tokens;
use congdan_server::ServerConfig;
use serde_json::{json, Value};

async fn start_with(b: &Backend, adjust: impl FnOnce(&mut ServerConfig)) -> congdan_server::RunningServer {
    let mut config = common::config(&b.url);
    adjust(&mut config);
    congdan_server::start(config).await.expect("server starts")
}

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// A raw request with the given headers (no nonce retry): for the attack tests.
async fn raw(method: &str, url: &str, token: Option<&str>, proof: Option<&str>) -> reqwest::Response {
    let mut req = id::http().request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("DPoP {t}"));
    }
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.unwrap()
}

on_both_backends!(login_through_the_dev_provider_then_me, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let mut lan = id::login(&s.url(), "lan").await;
    assert_eq!(lan.tokens.token_type, "DPoP");
    assert_eq!(lan.tokens.expires_in, 600);
    assert_eq!(lan.tokens.account.display_name, "Nguyễn Thị Lan");
    assert_eq!(lan.tokens.account.national_id_masked, "079*******45");
    assert_eq!(lan.tokens.account.roles, vec!["resident"]);
    let r = lan.request("GET", "/v1/me", None).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("dpop-nonce"), "every DPoP-checked response carries a nonce");
    let me: AccountInfo = r.json().await.unwrap();
    assert_eq!(me, lan.tokens.account);
    // A second login of the same person: the same account.
    let again = id::login(&s.url(), "lan").await;
    assert_eq!(again.tokens.account.account_id, me.account_id);
    s.shutdown().await;
});

on_both_backends!(every_attack_on_a_request_has_its_own_code, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let base = s.url();
    let me_url = format!("{base}/v1/me");
    let mut lan = id::login(&base, "lan").await;
    // Get a current nonce.
    assert_eq!(lan.request("GET", "/v1/me", None).await.status(), 200);
    let nonce = lan.nonce.clone().unwrap();
    let token = lan.tokens.access_token.clone();
    let good = |claims: Value| lan.device.proof_with(claims);
    let claims = |method: &str, url: &str| lan.device.claims(method, url, Some(&token), Some(&nonce));

    let r = raw("GET", &me_url, None, Some(&good(claims("GET", &me_url)))).await;
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).starts_with("DPoP"));
    assert_eq!(id::error_code(r).await, "missing_token");

    // Tampered: one bit of the signed bytes flipped.
    let mut bytes = congdan_core::crypto::jws::b64url_decode(&token).unwrap();
    bytes[20] ^= 1;
    let tampered = congdan_core::crypto::jws::b64url(&bytes);
    let r = raw("GET", &me_url, Some(&tampered), Some(&good(lan.device.claims("GET", &me_url, Some(&tampered), Some(&nonce))))).await;
    assert_eq!(id::error_code(r).await, "invalid_token");

    // Foreign: the same claims signed by another server's key.
    let real = tokens::verify(&token, &*s.state.identity.keys.current()).unwrap();
    let other_key = Ed25519Signer::from_seed(&[42; 32], b"foreign!".to_vec()).unwrap();
    let foreign = tokens::issue(&real, &other_key).unwrap();
    let r = raw("GET", &me_url, Some(&foreign), Some(&good(lan.device.claims("GET", &me_url, Some(&foreign), Some(&nonce))))).await;
    assert_eq!(id::error_code(r).await, "invalid_token");

    // The token with another device's proof.
    let thief = Device::new();
    let r = raw("GET", &me_url, Some(&token), Some(&thief.proof("GET", &me_url, Some(&token), Some(&nonce)))).await;
    assert_eq!(id::error_code(r).await, "dpop_key_mismatch");

    // No proof, garbage proof, wrong ath.
    assert_eq!(id::error_code(raw("GET", &me_url, Some(&token), None).await).await, "invalid_dpop_proof");
    assert_eq!(id::error_code(raw("GET", &me_url, Some(&token), Some("a.b.c")).await).await, "invalid_dpop_proof");
    let mut wrong_ath = claims("GET", &me_url);
    wrong_ath["ath"] = json!(id::sha256_b64(b"another token"));
    assert_eq!(id::error_code(raw("GET", &me_url, Some(&token), Some(&good(wrong_ath))).await).await, "invalid_dpop_proof");
    let mut old = claims("GET", &me_url);
    old["iat"] = json!(id::now_secs() - 301);
    assert_eq!(id::error_code(raw("GET", &me_url, Some(&token), Some(&good(old))).await).await, "invalid_dpop_proof");

    // Another method, another URL (path, port), query ignored.
    assert_eq!(id::error_code(raw("GET", &me_url, Some(&token), Some(&good(claims("POST", &me_url)))).await).await, "dpop_method_mismatch");
    let other_url = format!("{base}/v1/auth/logout");
    assert_eq!(id::error_code(raw("GET", &me_url, Some(&token), Some(&good(claims("GET", &other_url)))).await).await, "dpop_url_mismatch");
    let other_port = format!("http://127.0.0.1:{}/v1/me", s.addr.port() + 1);
    assert_eq!(id::error_code(raw("GET", &me_url, Some(&token), Some(&good(claims("GET", &other_port)))).await).await, "dpop_url_mismatch");
    let with_query = raw("GET", &me_url, Some(&token), Some(&good(claims("GET", &format!("{me_url}?x=1"))))).await;
    assert_eq!(with_query.status(), 200, "the query is not part of htu");

    // Nonce: missing, stale, forged -> use_dpop_nonce with a fresh one.
    let r = raw("GET", &me_url, Some(&token), Some(&good(lan.device.claims("GET", &me_url, Some(&token), None)))).await;
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains("error=\"use_dpop_nonce\""));
    let fresh = r.headers().get("dpop-nonce").expect("a nonce comes with use_dpop_nonce").to_str().unwrap().to_string();
    assert_eq!(id::error_code(r).await, "use_dpop_nonce");
    let window: u64 = fresh.split('.').next().unwrap().parse().unwrap();
    let stale = format!("{}.{}", window - 2, fresh.split('.').nth(1).unwrap());
    for bad in [stale.as_str(), "1.AAAA", "nonsense"] {
        let r = raw("GET", &me_url, Some(&token), Some(&good(lan.device.claims("GET", &me_url, Some(&token), Some(bad))))).await;
        assert_eq!(id::error_code(r).await, "use_dpop_nonce", "{bad}");
    }

    // Replay: the same good proof twice.
    let proof = good(claims("GET", &me_url));
    assert_eq!(raw("GET", &me_url, Some(&token), Some(&proof)).await.status(), 200);
    let r = raw("GET", &me_url, Some(&token), Some(&proof)).await;
    assert_eq!(id::error_code(r).await, "dpop_replay");
    s.shutdown().await;
});

on_both_backends!(an_expired_access_token_is_refused, |b: Backend| async move {
    // Expiry is whole seconds (exp = floor(now) + ttl), so a 1 s token can be dead a millisecond
    // after it is issued. 3 s keeps the refreshed token alive for at least 2 s on a loaded CI
    // machine, and sleeping just over 3 s is enough for the first one to be past exp.
    let s = start_with(&b, |c| c.identity.access_token_ttl_secs = 3).await;
    let mut lan = id::login(&s.url(), "lan").await;
    assert_eq!(lan.tokens.expires_in, 3);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let r = lan.request("GET", "/v1/me", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(id::error_code(r).await, "token_expired");
    // Refreshing gives a working token again.
    let r = lan.refresh().await;
    assert_eq!(r.status(), 200);
    lan.tokens = r.json().await.unwrap();
    assert_eq!(lan.request("GET", "/v1/me", None).await.status(), 200);
    s.shutdown().await;
});

on_both_backends!(login_failures_have_their_own_codes, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let base = s.url();
    let http = id::http();
    let authorize = |params: Vec<(&'static str, String)>| {
        let http = http.clone();
        let base = base.clone();
        async move { http.get(format!("{base}/v1/auth/authorize")).query(&params).send().await.unwrap() }
    };
    let good = || {
        vec![
            ("response_type", "code".to_string()),
            ("client_id", "congdan-app".to_string()),
            ("redirect_uri", id::APP_REDIRECT.to_string()),
            ("state", "s1".to_string()),
            ("code_challenge", id::sha256_b64(b"verifier-verifier-verifier-verifier-verifier")),
            ("code_challenge_method", "S256".to_string()),
        ]
    };
    let with = |key: &'static str, value: &str| {
        let mut p = good();
        p.retain(|(k, _)| *k != key);
        p.push((key, value.to_string()));
        p
    };
    // Bad client or redirect URI: 400, and no redirect anywhere.
    for (params, code) in [
        (with("client_id", "evil"), "invalid_client"),
        (with("redirect_uri", "https://evil.example/cb"), "invalid_request"),
        (with("redirect_uri", "http://127.0.0.1/no-port"), "invalid_request"),
        (with("code_challenge_method", "plain"), "invalid_request"),
        (with("code_challenge", "short"), "invalid_request"),
        (with("state", ""), "invalid_request"),
    ] {
        let r = authorize(params).await;
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("location").is_none());
        assert_eq!(id::error_code(r).await, code);
    }
    assert_eq!(authorize(with("redirect_uri", "vn.congdan.app:/oauth2redirect")).await.status(), 302);

    // Unknown transaction at the callback, and a callback used twice.
    let r = http.get(format!("{base}/v1/auth/callback?code=x&state=never-issued")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(id::error_code(r).await, "login_state_invalid");
    let r = authorize(good()).await;
    let page = http.get(id::location(&r)).send().await.unwrap().text().await.unwrap();
    let marker = "name=\"request_id\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let request_id = &page[start..start + page[start..].find('"').unwrap()];
    let r = http
        .post(format!("{base}/dev-idp/authorize"))
        .form(&[("request_id", request_id), ("username", "minh"), ("password", "demo"), ("action", "login")])
        .send()
        .await
        .unwrap();
    let callback = id::location(&r);
    let first = http.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), 302);
    let second = http.get(&callback).send().await.unwrap();
    assert_eq!(id::error_code(second).await, "login_state_invalid");
    // A provider error goes back to the app as access_denied with the app's state.
    let r = authorize(good()).await;
    let own_state = id::query_param(&id::location(&r), "state").unwrap();
    let r = http.get(format!("{base}/v1/auth/callback")).query(&[("error", "access_denied"), ("state", own_state.as_str())]).send().await.unwrap();
    let to_app = id::location(&r);
    assert_eq!(id::query_param(&to_app, "error").as_deref(), Some("access_denied"));
    assert_eq!(id::query_param(&to_app, "state").as_deref(), Some("s1"));

    // Bad PKCE verifier; the code is then burnt.
    let code = id::browser_login(&base, "lan").await;
    let device = Device::new();
    let mut nonce = None;
    let wrong = id::AppCode { code: code.code.clone(), verifier: "x".repeat(43), redirect_uri: code.redirect_uri.clone(), provider_code: String::new(), server_state: String::new() };
    let r = id::redeem(&base, &device, &mut nonce, &wrong).await;
    assert_eq!(r.status(), 400);
    assert_eq!(id::error_code(r).await, "pkce_mismatch");
    assert_eq!(id::error_code(id::redeem(&base, &device, &mut nonce, &code).await).await, "invalid_grant");

    // Another redirect URI than at authorize.
    let code = id::browser_login(&base, "lan").await;
    let moved = id::AppCode { code: code.code.clone(), verifier: code.verifier.clone(), redirect_uri: "vn.congdan.app:/oauth2redirect".into(), provider_code: String::new(), server_state: String::new() };
    assert_eq!(id::error_code(id::redeem(&base, &device, &mut nonce, &moved).await).await, "invalid_grant");

    // A reused app code: refused, and the session it produced is revoked.
    let code = id::browser_login(&base, "lan").await;
    let r = id::redeem(&base, &device, &mut nonce, &code).await;
    assert_eq!(r.status(), 200);
    let tokens: congdan_core::identity::wire::TokenResponse = r.json().await.unwrap();
    let r = id::redeem(&base, &device, &mut nonce, &code).await;
    assert_eq!(r.status(), 400);
    assert_eq!(id::error_code(r).await, "invalid_grant");
    let mut session = Session { base: base.clone(), device, tokens, nonce };
    assert_eq!(id::error_code(session.request("GET", "/v1/me", None).await).await, "token_revoked");

    // The token endpoint needs a proof too, and a form body.
    let r = http.post(format!("{base}/v1/auth/token")).form(&[("grant_type", "refresh_token"), ("refresh_token", "AAAA"), ("client_id", "congdan-app")]).send().await.unwrap();
    assert_eq!(id::error_code(r).await, "invalid_dpop_proof");
    let r = http.post(format!("{base}/v1/auth/token")).json(&json!({"grant_type": "refresh_token"})).send().await.unwrap();
    assert_eq!(r.status(), 415);
    s.shutdown().await;
});

on_both_backends!(refresh_rotates_and_survives_a_lost_response, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let mut lan = id::login(&s.url(), "lan").await;
    let first = lan.tokens.refresh_token.clone();
    let r = lan.refresh().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let second: congdan_core::identity::wire::TokenResponse = r.json().await.unwrap();
    assert_ne!(second.refresh_token, first, "rotation");
    assert_ne!(second.access_token, lan.tokens.access_token);
    // The response carrying `second` was lost: the phone retries with `first` within the grace.
    let r = lan.refresh().await;
    assert_eq!(r.status(), 200, "retry within grace");
    let third: congdan_core::identity::wire::TokenResponse = r.json().await.unwrap();
    assert_ne!(third.refresh_token, second.refresh_token);
    // `second` is dead; `third` lives on.
    lan.tokens.refresh_token = second.refresh_token.clone();
    let r = lan.refresh().await;
    assert_eq!(r.status(), 400);
    assert_eq!(id::error_code(r).await, "invalid_grant");
    lan.tokens = third;
    let r = lan.refresh().await;
    assert_eq!(r.status(), 200);
    lan.tokens = r.json().await.unwrap();
    assert_eq!(lan.request("GET", "/v1/me", None).await.status(), 200);
    // Another device cannot use the family's refresh token, and the family survives that.
    let mut thief = Session { base: s.url(), device: Device::new(), tokens: lan.tokens.clone(), nonce: None };
    let r = thief.refresh().await;
    assert_eq!(r.status(), 401);
    assert_eq!(id::error_code(r).await, "dpop_key_mismatch");
    assert_eq!(lan.refresh().await.status(), 200);
    s.shutdown().await;
});

on_both_backends!(refresh_token_reuse_revokes_the_family, |b: Backend| async move {
    let s = start_with(&b, |c| c.identity.refresh_grace_secs = 1).await;
    let mut lan = id::login(&s.url(), "lan").await;
    let first = lan.tokens.refresh_token.clone();
    let r = lan.refresh().await;
    lan.tokens = r.json().await.unwrap();
    let r = lan.refresh().await;
    lan.tokens = r.json().await.unwrap();
    assert_eq!(lan.request("GET", "/v1/me", None).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // The first refresh token again, long after its use (it was stolen and replayed).
    let newest = std::mem::replace(&mut lan.tokens.refresh_token, first);
    let r = lan.refresh().await;
    assert_eq!(r.status(), 401);
    assert_eq!(id::error_code(r).await, "refresh_token_reused");
    lan.tokens.refresh_token = newest;
    // The newest refresh token and the live access token both stop working.
    assert_eq!(id::error_code(lan.refresh().await).await, "invalid_grant");
    assert_eq!(id::error_code(lan.request("GET", "/v1/me", None).await).await, "token_revoked");
    s.shutdown().await;
});

on_both_backends!(logout_revokes_at_once, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let mut lan = id::login(&s.url(), "lan").await;
    let mut other_login = id::login(&s.url(), "lan").await;
    let r = lan.request("POST", "/v1/auth/logout", None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(id::error_code(lan.request("GET", "/v1/me", None).await).await, "token_revoked");
    assert_eq!(id::error_code(lan.refresh().await).await, "invalid_grant");
    // Another login (another family) of the same person is untouched.
    assert_eq!(other_login.request("GET", "/v1/me", None).await.status(), 200);
    s.shutdown().await;
});

on_both_backends!(roles_come_from_configuration_only, |b: Backend| async move {
    let s = start_with(&b, |c| {
        c.identity.role_grants = congdan_server::config::parse_role_grants("079204001234=operator:METRO-L1").unwrap();
    })
    .await;
    let staff = id::login(&s.url(), "staff").await;
    assert_eq!(staff.tokens.account.roles, vec!["resident", "agency:CONG-AN-PHUONG-XA"]);
    let minh = id::login(&s.url(), "minh").await;
    assert_eq!(minh.tokens.account.roles, vec!["resident", "operator:METRO-L1"], "--grant-role");
    // Role-looking parameters anywhere in the login change nothing.
    let http = id::http();
    let verifier = "v".repeat(43);
    let r = http
        .get(format!("{}/v1/auth/authorize", s.url()))
        .query(&[
            ("response_type", "code"),
            ("client_id", "congdan-app"),
            ("redirect_uri", id::APP_REDIRECT),
            ("state", "s"),
            ("code_challenge", &id::sha256_b64(verifier.as_bytes())),
            ("code_challenge_method", "S256"),
            ("role", "agency:CONG-AN-PHUONG-XA"),
            ("roles", "agency:CONG-AN-PHUONG-XA"),
            ("scope", "openid agency:CONG-AN-PHUONG-XA"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let mut lan = id::login(&s.url(), "lan").await;
    assert_eq!(lan.tokens.account.roles, vec!["resident"]);
    let rt = lan.tokens.refresh_token.clone();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str()), ("client_id", "congdan-app"), ("roles", "agency:X"), ("scope", "agency:X")];
    let r = id::send_with_proof(&s.url(), &lan.device, &mut lan.nonce, "POST", "/v1/auth/token", None, id::Body::Form(&form)).await;
    let t: congdan_core::identity::wire::TokenResponse = r.json().await.unwrap();
    assert_eq!(t.account.roles, vec!["resident"]);
    // The role check helper.
    let caller = congdan_server::identity::Authenticated { account_id: "a".into(), roles: t.account.roles.clone(), jkt: [0; 32], family: "f".into() };
    assert_eq!(caller.require_role("agency:").unwrap_err().code(), "forbidden");
    let staff_caller = congdan_server::identity::Authenticated { roles: staff.tokens.account.roles.clone(), ..caller };
    assert!(staff_caller.require_role("agency:").is_ok());
    s.shutdown().await;
});

on_both_backends!(the_account_feed_is_the_callers_own, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let mut lan = id::login(&s.url(), "lan").await;
    let minh = id::login(&s.url(), "minh").await;
    let body = json!({"feeds": [{"feed": "account", "cursor": ""}, {"feed": "public", "cursor": ""}]});
    let r = lan.request("POST", "/v1/sync/pull", Some(&body)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let changes = v["feeds"][0]["changes"].as_array().unwrap();
    assert_eq!(v["feeds"][0]["feed"], "account");
    assert_eq!(changes.len(), 1, "one profile change for the first login; the second login changed nothing");
    assert_eq!(changes[0]["kind"], "account.profile");
    assert_eq!(changes[0]["key"], lan.tokens.account.account_id.as_str());
    let profile: AccountInfo = serde_json::from_value(changes[0]["data"].clone()).unwrap();
    assert_eq!(profile, lan.tokens.account);
    assert!(!v["feeds"][1]["changes"].as_array().unwrap().is_empty(), "public feed alongside");
    // Nobody else's feed by name, and not without a token.
    let other = json!({"feeds": [{"feed": format!("account:{}", minh.tokens.account.account_id), "cursor": ""}]});
    let r = lan.request("POST", "/v1/sync/pull", Some(&other)).await;
    assert_eq!(r.status(), 404);
    assert_eq!(id::error_code(r).await, "unknown_feed");
    let r = reqwest::Client::new().post(format!("{}/v1/sync/pull", s.url())).json(&json!({"feeds": [{"feed": "account"}]})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(id::error_code(r).await, "missing_token");
    let r = reqwest::Client::new().post(format!("{}/v1/sync/pull", s.url())).json(&json!({"feeds": [{"feed": "public"}]})).send().await.unwrap();
    assert_eq!(r.status(), 200, "the public feed stays anonymous");
    s.shutdown().await;
});

on_both_backends!(login_endpoints_are_rate_limited, |b: Backend| async move {
    let s = start_with(&b, |c| c.identity.auth_rate_limit = congdan_server::config::RateLimit { burst: 3, refill_secs: 60.0 }).await;
    let http = id::http();
    let url = format!("{}/v1/auth/callback?state=x", s.url());
    for _ in 0..3 {
        assert_eq!(http.get(&url).send().await.unwrap().status(), 400);
    }
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(id::error_code(r).await, "rate_limited");
    assert_eq!(http.get(format!("{}/dev-idp/jwks", s.url())).send().await.unwrap().status(), 429);
    // Other endpoints are not limited.
    assert_eq!(http.get(format!("{}/health", s.url())).send().await.unwrap().status(), 200);
    s.shutdown().await;
});

on_both_backends!(behind_a_trusted_proxy_each_client_has_its_own_budget, |b: Backend| async move {
    let limit = congdan_server::config::RateLimit { burst: 2, refill_secs: 600.0 };
    let http = id::http();
    let hit = |base: String, forwarded_for: &'static str| {
        let http = http.clone();
        async move {
            http.get(format!("{base}/v1/auth/callback?state=x")).header("X-Forwarded-For", forwarded_for).send().await.unwrap().status().as_u16()
        }
    };
    // The test client is 127.0.0.1: here it plays the city's load balancer.
    let s = start_with(&b, |c| {
        c.identity.auth_rate_limit = limit;
        c.identity.trusted_proxies = congdan_server::identity::client_address::parse_networks("127.0.0.1/32").unwrap();
    })
    .await;
    assert_eq!(hit(s.url(), "198.51.100.1").await, 400);
    assert_eq!(hit(s.url(), "198.51.100.1").await, 400);
    assert_eq!(hit(s.url(), "198.51.100.1").await, 429, "one resident's budget is spent");
    assert_eq!(hit(s.url(), "198.51.100.2").await, 400, "another resident behind the same balancer is not throttled");
    // A name the client wrote itself in front of the balancer's entry changes nothing.
    assert_eq!(hit(s.url(), "203.0.113.9, 198.51.100.1").await, 429);
    // IPv6 clients count per /64.
    assert_eq!(hit(s.url(), "2001:db8:1:2::1").await, 400);
    assert_eq!(hit(s.url(), "2001:db8:1:2::2").await, 400);
    assert_eq!(hit(s.url(), "2001:db8:1:2:ffff::3").await, 429);
    s.shutdown().await;
    // Without a trusted proxy the header is the client's own words: it cannot escape the limit.
    let s = start_with(&b, |c| c.identity.auth_rate_limit = limit).await;
    assert_eq!(hit(s.url(), "198.51.100.1").await, 400);
    assert_eq!(hit(s.url(), "198.51.100.2").await, 400);
    assert_eq!(hit(s.url(), "198.51.100.3").await, 429);
    s.shutdown().await;
});

/// A refresh as a phone behind a carrier's NAT sends it: the address is the one the trusted
/// balancer saw (`X-Forwarded-For`).
async fn refresh_from(session: &mut Session, refresh_token: &str, forwarded_for: &str) -> reqwest::Response {
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", "congdan-app")];
    let headers = [("X-Forwarded-For", forwarded_for)];
    id::send_with_proof_and_headers(&session.base, &session.device, &mut session.nonce, "POST", "/v1/auth/token", None, id::Body::Form(&form), &headers)
        .await
}

on_both_backends!(refreshes_behind_one_address_pay_only_when_refused, |b: Backend| async move {
    let s = start_with(&b, |c| {
        c.identity.auth_rate_limit = congdan_server::config::RateLimit { burst: 12, refill_secs: 600.0 };
        c.identity.trusted_proxies = congdan_server::identity::client_address::parse_networks("127.0.0.1").unwrap();
    })
    .await;
    let mut lan = id::login(&s.url(), "lan").await;
    // Thousands of phones share the carrier's address; their refreshes succeed and cost nothing.
    let carrier = "198.51.100.7";
    for _ in 0..30 {
        let current = lan.tokens.refresh_token.clone();
        let r = refresh_from(&mut lan, &current, carrier).await;
        assert_eq!(r.status(), 200, "a good refresh is never limited while the address has budget");
        lan.tokens = r.json().await.unwrap();
    }
    // Refused refreshes (guessed tokens) pay: twelve spend the budget, then the address waits.
    let guessed = "A".repeat(43);
    for _ in 0..12 {
        assert_eq!(id::error_code(refresh_from(&mut lan, &guessed, carrier).await).await, "invalid_grant");
    }
    let r = refresh_from(&mut lan, &guessed, carrier).await;
    assert_eq!(r.status(), 429);
    assert_eq!(id::error_code(r).await, "rate_limited");
    // Logins, which anyone can start, pay as they come.
    let http = id::http();
    let other = "198.51.100.8";
    for i in 0..13 {
        let r = http.get(format!("{}/v1/auth/callback?state=x", s.url())).header("X-Forwarded-For", other).send().await.unwrap();
        assert_eq!(r.status(), if i < 12 { 400 } else { 429 }, "login request {i}");
    }
    s.shutdown().await;
});

/// Two instances sharing one PostgreSQL: each accepts the other's tokens, and a proof used on one
/// is a replay on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_keys_and_the_replay_store() {
    let b = common::postgres().await;
    let one = common::start(&b.url).await;
    let two = common::start(&b.url).await;
    let mut lan = id::login(&one.url(), "lan").await;
    // Same token, other instance (its nonce is accepted too: the secret is shared).
    lan.base = two.url();
    let r = lan.request("GET", "/v1/me", None).await;
    assert_eq!(r.status(), 200, "instance two accepts instance one's token");
    let nonce = lan.nonce.clone().unwrap();
    let token = lan.tokens.access_token.clone();
    let me_one = format!("{}/v1/me", one.url());
    let me_two = format!("{}/v1/me", two.url());
    // One proof, valid for both (the htu differs only by port, so craft one per instance and
    // reuse the same jti): the replay key is jkt + jti.
    let mut c1 = lan.device.claims("GET", &me_one, Some(&token), Some(&nonce));
    let mut c2 = lan.device.claims("GET", &me_two, Some(&token), Some(&nonce));
    c2["jti"] = c1["jti"].clone();
    c1["iat"] = c2["iat"].clone();
    assert_eq!(raw("GET", &me_one, Some(&token), Some(&lan.device.proof_with(c1))).await.status(), 200);
    let r = raw("GET", &me_two, Some(&token), Some(&lan.device.proof_with(c2))).await;
    assert_eq!(id::error_code(r).await, "dpop_replay");
    // Refresh on two, logout on one: two refuses at once.
    let r = lan.refresh().await;
    assert_eq!(r.status(), 200);
    lan.tokens = r.json().await.unwrap();
    lan.base = one.url();
    assert_eq!(lan.request("POST", "/v1/auth/logout", None).await.status(), 204);
    lan.base = two.url();
    assert_eq!(id::error_code(lan.request("GET", "/v1/me", None).await).await, "token_revoked");
    one.shutdown().await;
    two.shutdown().await;
}

/// Two instances sharing one PostgreSQL sign identity credentials with one city key, created by
/// whichever asked first: a desk that fetched the keys from either verifies credentials from both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_issue_credentials_under_one_city_key() {
    use congdan_core::crypto::jws::b64url_decode;
    use congdan_core::crypto::{Algorithm, PublicKey};
    use congdan_core::identity::credential::verify_credential;
    use congdan_core::identity::credential::wire::{CredentialKeys, IssuedCredential};
    let b = common::postgres().await;
    let one = common::start(&b.url).await;
    let two = common::start(&b.url).await;
    // Both instances create the key at once; one row wins and both read it back.
    let (k1, k2) = tokio::join!(
        id::http().get(format!("{}/v1/identity/credential-keys", one.url())).send(),
        id::http().get(format!("{}/v1/identity/credential-keys", two.url())).send()
    );
    let k1: CredentialKeys = k1.unwrap().json().await.unwrap();
    let k2: CredentialKeys = k2.unwrap().json().await.unwrap();
    assert_eq!(k1, k2);
    assert_eq!(k1.keys.len(), 1);
    let public = PublicKey { algorithm: Algorithm::Ed25519, bytes: b64url_decode(&k1.keys[0].public_key).unwrap() };
    let trusted = vec![(public.default_key_id(), public)];
    for server in [&one, &two] {
        let mut lan = id::login(&server.url(), "lan").await;
        let issued: IssuedCredential = lan.request("POST", "/v1/me/credential", None).await.json().await.unwrap();
        assert!(verify_credential(&b64url_decode(&issued.credential).unwrap(), &trusted).is_ok());
    }
    one.shutdown().await;
    two.shutdown().await;
}

// A provider that is not the built-in one: the server in its production shape (no `/dev-idp`),
// configured only by the provider's issuer URL, client id and secret, logs a resident in through
// a provider on another address. The stand-in is the development provider mounted on its own
// listener: it speaks the real protocol (discovery, JWKS, authorize, token with client
// authentication and PKCE) and shares nothing with the server but the client registration.
on_both_backends!(a_provider_elsewhere_is_configured_by_its_url_alone, |b: Backend| async move {
    let provider_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/national-idp", provider_listener.local_addr().unwrap());
    let (client_id, client_secret) = ("congdan-city".to_string(), "s3cret-only-the-two-know".to_string());
    let s = start_with(&b, |c| {
        c.identity.dev_idp = false;
        c.identity.demo_roles = false;
        c.identity.oidc = Some(congdan_server::config::OidcProviderConfig {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        });
    })
    .await;
    let provider = congdan_server::devidp::router::<()>(congdan_server::devidp::DevIdpConfig {
        issuer: issuer.clone(),
        client_id,
        client_secret,
        redirect_uris: vec![format!("{}/v1/auth/callback", s.url())],
        id_token_ttl_secs: 300,
    });
    let provider_task = tokio::spawn(async move {
        let app = axum::Router::new().nest_service("/national-idp", provider);
        axum::serve(provider_listener, app).await.unwrap();
    });
    // The server mounts no provider of its own.
    let r = id::http().get(format!("{}/dev-idp/.well-known/openid-configuration", s.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // The whole login goes through the provider elsewhere.
    let code = id::browser_login(&s.url(), "staff").await;
    let device = Device::new();
    let mut nonce = None;
    let r = id::redeem(&s.url(), &device, &mut nonce, &code).await;
    assert_eq!(r.status(), 200, "token: {}", r.text().await.unwrap());
    let tokens: congdan_core::identity::wire::TokenResponse = r.json().await.unwrap();
    assert_eq!(tokens.account.display_name, "Lê Văn Hùng");
    assert_eq!(tokens.account.roles, vec!["resident"], "demo roles are off: a role comes from this server's configuration only");
    let mut staff = Session { base: s.url(), device, tokens, nonce };
    assert_eq!(staff.request("GET", "/v1/me", None).await.status(), 200);
    provider_task.abort();
    s.shutdown().await;
});

on_both_backends!(an_identity_credential_is_bound_to_the_callers_device_and_verifies_with_the_published_keys, |b: Backend| async move {
    use congdan_core::crypto::jws::b64url_decode;
    use congdan_core::crypto::{Algorithm, PublicKey};
    use congdan_core::identity::credential::wire::{CredentialKeys, IssuedCredential};
    use congdan_core::identity::credential::{attribute_digest, verify_credential, Attribute};
    let s = common::start(&b.url).await;
    let mut ba = id::login(&s.url(), "ba").await;
    let r = ba.request("POST", "/v1/me/credential", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store", "personal data");
    let issued: IssuedCredential = r.json().await.unwrap();

    // The published keys (no token needed) verify it; the key id is derived, not trusted.
    let keys: CredentialKeys = id::http().get(format!("{}/v1/identity/credential-keys", s.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys.keys.len(), 1);
    let public = PublicKey { algorithm: Algorithm::Ed25519, bytes: b64url_decode(&keys.keys[0].public_key).unwrap() };
    let trusted = vec![(public.default_key_id(), public)];
    let credential = verify_credential(&b64url_decode(&issued.credential).unwrap(), &trusted).unwrap();
    let device = congdan_core::tickets::wire::compress_device_key(&ba.device.signer.public_key().bytes).unwrap();
    assert_eq!(credential.device_key, device, "bound to the key of the session that asked");
    assert_eq!(credential.expires_at - credential.issued_at, 30 * 86_400);
    assert_eq!(issued.expires_at, credential.expires_at);
    // Every value with its salt hashes to the digest the city signed.
    let mut shown = Vec::new();
    for d in &issued.disclosures {
        let attribute = Attribute::from_name(&d.attribute).unwrap();
        let salt: [u8; 16] = b64url_decode(&d.salt).unwrap().try_into().unwrap();
        assert_eq!(credential.digests[&attribute], attribute_digest(attribute, &salt, &d.value));
        shown.push((d.attribute.as_str(), d.value.as_str()));
    }
    assert_eq!(
        shown,
        vec![
            ("full_name", "Đặng Văn Ba"),
            ("national_id", "079050001950"),
            ("birth_date", "1950-05-19"),
            ("age_over_18", "true"),
            ("age_over_60", "true")
        ]
    );
    // Lan has no verified birth date: no age claims at all.
    let mut lan = id::login(&s.url(), "lan").await;
    let lan_issued: IssuedCredential = lan.request("POST", "/v1/me/credential", None).await.json().await.unwrap();
    let names: Vec<&str> = lan_issued.disclosures.iter().map(|d| d.attribute.as_str()).collect();
    assert_eq!(names, vec!["full_name", "national_id"]);
    // A second credential: new id, new salts.
    let again: IssuedCredential = ba.request("POST", "/v1/me/credential", None).await.json().await.unwrap();
    let second = verify_credential(&b64url_decode(&again.credential).unwrap(), &trusted).unwrap();
    assert_ne!(second.credential_id, credential.credential_id);
    assert_ne!(again.disclosures[0].salt, issued.disclosures[0].salt);
    s.shutdown().await;
});
