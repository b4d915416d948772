//! Authorisation across the whole API, on SQLite and PostgreSQL: every route the server has
//! (`app::ROUTES`, the list the OpenAPI test holds to the router) is walked. Only health, the
//! catalog, the OpenAPI document, the login flow and the anonymous public feed answer without a
//! token; every other route refuses a missing, a forged and a foreign-key token with its own code.
//! A resident's valid token opens no agency and no operator route, and agency staff open no
//! operator route: roles come from configuration (docs/identity.md#roles).

mod common;

use common::identity::{self as id, Device};
use common::Backend;
use serde_json::Value;

/// Routes that answer without a token, and why.
const PUBLIC: &[(&str, &str)] = &[
    ("get", "/health"),                            // liveness for the balancer
    ("get", "/openapi.json"),                      // the API description
    ("post", "/v1/sync/pull"),                     // anonymous for the public feed only; the account feed needs a token (tested below)
    ("get", "/v1/catalog/procedures"),             // the public catalog
    ("get", "/v1/catalog/procedures/{code}"),
    ("get", "/v1/auth/authorize"),                 // the login flow itself
    ("get", "/v1/auth/callback"),
    ("post", "/v1/auth/token"),                    // authenticated by its grant and DPoP proof, not by an access token
    ("get", "/v1/identity/credential-keys"),       // the city's public keys, for offline verifiers
];

/// The role prefix a route needs beyond `resident`, from its path.
fn required_role(path: &str) -> Option<&'static str> {
    if path.starts_with("/v1/agency/") {
        Some("agency:")
    } else if path.starts_with("/v1/operator/") {
        Some("operator:")
    } else {
        None
    }
}

/// The route with its parameters filled by well-formed values that name nothing.
fn concrete(path: &str) -> String {
    path.replace("{id}", "0b7f3c1e-4a5d-4f6e-8a9b-1c2d3e4f5a6b")
        .replace("{sha256}", &"ab".repeat(32))
        .replace("{key_id}", &"cd".repeat(8))
        .replace("{code}", "CT-TAM-TRU")
}

fn protected_routes() -> Vec<(&'static str, &'static str)> {
    congdan_server::app::ROUTES.iter().copied().filter(|r| !PUBLIC.contains(r)).collect()
}

async fn anonymous(base: &str, method: &str, path: &str, authorization: Option<String>, proof: Option<String>) -> reqwest::Response {
    let mut req = id::http()
        .request(method.to_uppercase().parse().unwrap(), format!("{base}{path}"))
        // A command key and a body, so that nothing but the missing credentials can be refused.
        .header("Idempotency-Key", "\"6f1d2c3b-0a9e-4d8c-b7a6-5f4e3d2c1b0a\"");
    if method != "get" {
        req = req.header("Content-Type", "application/json").body("{}");
    }
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.unwrap()
}

async fn code_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["error"]["code"].as_str().unwrap_or_default().to_string())
}

#[test]
fn the_public_list_names_only_routes_that_exist() {
    for route in PUBLIC {
        assert!(congdan_server::app::ROUTES.contains(route), "{route:?} is not a route any more");
    }
    let protected = protected_routes();
    assert!(protected.len() >= 25, "the walk covers the API: {} routes", protected.len());
    assert!(protected.contains(&("post", "/v1/auth/logout")));
}

on_both_backends!(every_route_but_the_public_ones_needs_a_valid_token, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let base = s.url();
    let mut refused = 0;
    for (method, path) in protected_routes() {
        let url_path = concrete(path);
        // No credentials at all.
        let (status, code) = code_of(anonymous(&base, method, &url_path, None, None).await).await;
        assert_eq!((status, code.as_str()), (401, "missing_token"), "{method} {path} without a token");
        // A bearer token instead of a DPoP-bound one.
        let (status, code) = code_of(anonymous(&base, method, &url_path, Some("Bearer abc".into()), None).await).await;
        assert_eq!((status, code.as_str()), (401, "missing_token"), "{method} {path} with a bearer token");
        // A forged token with a well-formed proof.
        let device = Device::new();
        let proof = device.proof(&method.to_uppercase(), &format!("{base}{url_path}"), Some("Zm9yZ2Vk"), None);
        let (status, code) =
            code_of(anonymous(&base, method, &url_path, Some("DPoP Zm9yZ2Vk".into()), Some(proof)).await).await;
        assert_eq!((status, code.as_str()), (401, "invalid_token"), "{method} {path} with a forged token");
        refused += 1;
    }
    assert_eq!(refused, protected_routes().len());
    // The public routes really are public.
    for (method, path) in [("get", "/health"), ("get", "/openapi.json"), ("get", "/v1/catalog/procedures")] {
        let r = anonymous(&base, method, path, None, None).await;
        assert_eq!(r.status(), 200, "{method} {path} is public");
    }
    s.shutdown().await;
});

on_both_backends!(a_real_token_from_another_device_opens_nothing, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let base = s.url();
    let lan = id::login(&base, "lan").await;
    let thief = Device::new();
    let empty = serde_json::json!({});
    for (method, path) in protected_routes() {
        let url_path = concrete(path);
        // A stolen access token, presented with a proof from the thief's own key.
        let mut nonce = lan.nonce.clone();
        let r = id::send_with_proof(
            &base,
            &thief,
            &mut nonce,
            &method.to_uppercase(),
            &url_path,
            Some(&lan.tokens.access_token),
            if method == "get" { id::Body::Empty } else { id::Body::Command(&empty, "6f1d2c3b-0a9e-4d8c-b7a6-5f4e3d2c1b0a") },
        )
        .await;
        let (status, code) = code_of(r).await;
        assert_eq!((status, code.as_str()), (401, "dpop_key_mismatch"), "{method} {path} with a stolen token");
    }
    s.shutdown().await;
});

on_both_backends!(roles_guard_the_agency_and_operator_routes, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let base = s.url();
    let mut lan = id::login(&base, "lan").await;
    let mut staff = id::login(&base, "staff").await;
    let mut operator = id::login(&base, "operator").await;
    let mut guarded = 0;
    for (method, path) in protected_routes() {
        let Some(role) = required_role(path) else { continue };
        let url_path = concrete(path);
        let body = if method == "get" { None } else { Some(serde_json::json!({})) };
        // A resident holds neither role.
        let (status, code) = code_of(lan.request(&method.to_uppercase(), &url_path, body.as_ref()).await).await;
        assert_eq!((status, code.as_str()), (403, "forbidden"), "resident on {method} {path}");
        // Each staff role opens only its own routes.
        let outsider = if role == "agency:" { &mut operator } else { &mut staff };
        let (status, code) = code_of(outsider.request(&method.to_uppercase(), &url_path, body.as_ref()).await).await;
        assert_eq!((status, code.as_str()), (403, "forbidden"), "{} on {method} {path}", outsider.tokens.account.roles.join(","));
        let insider = if role == "agency:" { &mut staff } else { &mut operator };
        let (status, _) = code_of(insider.request(&method.to_uppercase(), &url_path, body.as_ref()).await).await;
        assert_ne!(status, 403, "{} on {method} {path} passes the role check", insider.tokens.account.roles.join(","));
        assert_ne!(status, 401);
        guarded += 1;
    }
    assert!(guarded >= 12, "agency and operator routes walked: {guarded}");
    s.shutdown().await;
});
