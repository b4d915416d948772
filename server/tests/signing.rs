//! Signature requests on both databases (issue 6): an agency creates, lists and cancels its own
//! requests; the resident fetches the document and decides with the device key; every bad
//! decision is refused with its own code; the verification bundle verifies with OpenSSL alone
//! and a tampered one does not; the audit trail shows any change to a stored entry.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::identity::{error_code, http, login, Session};
use common::Backend;
use congdan_core::crypto::{from_hex, hex, Signer};
use congdan_core::drafts::attachments::CHUNK_BYTES;
use congdan_core::signing::agency_wire::{AgencyRequestPage, AgencySignatureRequest, DecisionBundle, DossierBundle};
use congdan_core::signing::summary_hash;
use congdan_core::signing::wire::{encode_statement, Decision, Intent};
use congdan_server::db::{Db, DbError};
use serde_json::{json, Value};

const LAN_NID: &str = "079165012345";

fn now_secs() -> i64 {
    common::identity::now_secs()
}

fn pdf(seed: u8) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    v.extend((0..3000u32).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    v.extend_from_slice(b"\n%%EOF\n");
    v
}

fn sha_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Sends a raw request with a DPoP proof (PATCH chunks, downloads).
async fn raw(s: &mut Session, method: &str, path: &str, body: Option<Vec<u8>>, offset: Option<usize>) -> reqwest::Response {
    let url = format!("{}{path}", s.base);
    for attempt in 0..2 {
        let token = s.tokens.access_token.clone();
        let proof = s.device.proof(method, &url, Some(&token), s.nonce.as_deref());
        let mut req = http().request(method.parse().unwrap(), &url).header("DPoP", proof).header("Authorization", format!("DPoP {token}"));
        if let Some(o) = offset {
            req = req.header("Upload-Offset", o.to_string()).header("Content-Type", "application/octet-stream");
        }
        if let Some(b) = &body {
            req = req.body(b.clone());
        }
        let r = req.send().await.unwrap();
        if let Some(n) = r.headers().get("dpop-nonce") {
            s.nonce = Some(n.to_str().unwrap().to_string());
        }
        if r.status() == 401 && attempt == 0 {
            continue;
        }
        return r;
    }
    unreachable!()
}

/// The agency uploads a PDF the way a resident uploads an attachment.
async fn upload_pdf(staff: &mut Session, bytes: &[u8]) -> String {
    assert!(bytes.len() <= CHUNK_BYTES);
    let sha = sha_hex(bytes);
    let r = staff.request("POST", "/v1/blobs", Some(&json!({"sha256": sha, "size": bytes.len(), "media_type": "application/pdf"}))).await;
    assert_eq!(r.status(), 200);
    let r = raw(staff, "PATCH", &format!("/v1/blobs/{sha}"), Some(bytes.to_vec()), Some(0)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    sha
}

fn request_body(sha: &str, title: &str) -> Value {
    json!({
        "resident_national_id": LAN_NID,
        "title": title,
        "summary": "Biên bản bàn giao căn hộ 12A, Lê Lợi. Người ký xác nhận đã nhận chìa khoá.",
        "purpose": "Xác nhận bàn giao nhà",
        "document": {"sha256": sha},
        "expires_at": now_secs() + 86_400,
    })
}

/// Creates a request under a fresh idempotency key.
async fn create(staff: &mut Session, body: &Value) -> Value {
    let r = post_create(staff, body, &key()).await;
    assert_eq!(r.status(), 201, "create: {}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn post_create(staff: &mut Session, body: &Value, key: &str) -> reqwest::Response {
    staff.command("/v1/agency/signature-requests", body, key).await
}

async fn account_id(s: &mut Session) -> String {
    let me: Value = s.request("GET", "/v1/me", None).await.json().await.unwrap();
    me["account_id"].as_str().unwrap().to_string()
}

/// What the phone signs for `req`, with `signer`'s key.
fn decision_for(req: &Value, account: &str, key_id: &[u8], intent: Intent) -> Decision {
    Decision {
        request_id: req["id"].as_str().unwrap().into(),
        agency_code: req["agency_code"].as_str().unwrap().into(),
        document_sha256: from_hex(req["document"]["sha256"].as_str().unwrap()).unwrap().try_into().unwrap(),
        summary_sha256: summary_hash(req["summary"].as_str().unwrap()),
        intent,
        purpose: req["purpose"].as_str().unwrap().into(),
        decline_reason: None,
        account_id: account.into(),
        device_key_id: key_id.to_vec(),
        signed_at: now_secs() as u64,
        expires_at: req["expires_at"].as_u64().unwrap(),
    }
}

fn signed(d: &Decision, signer: &dyn Signer) -> String {
    encode_statement(&d.sign(signer).unwrap())
}

async fn send(s: &mut Session, id: &str, statement: &str, key: &str) -> reqwest::Response {
    s.command(&format!("/v1/signature-requests/{id}/decision"), &json!({"statement": statement}), key).await
}

async fn refused_with(r: reqwest::Response) -> String {
    assert!(r.status().is_client_error(), "expected a refusal, got {}", r.status());
    error_code(r).await
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Runs a statement on the test database (SQLite or PostgreSQL): the tests' stand-in for
/// someone with database access.
async fn exec(db: &Db, sql: String) {
    match db {
        Db::Sqlite(pool) => pool
            .write("test", move |tx| tx.execute_batch(&sql).map_err(|e| DbError::Query { context: "test", message: e.to_string() }))
            .await
            .unwrap(),
        Db::Postgres(pool) => pool.client().await.unwrap().batch_execute(&sql).await.unwrap(),
    }
}

async fn feed_kinds(s: &mut Session) -> Vec<(String, String)> {
    let r = s.request("POST", "/v1/sync/pull", Some(&json!({"feeds": [{"feed": "account", "cursor": ""}]}))).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["feeds"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap().to_string(), c["key"].as_str().unwrap_or_default().to_string()))
        .collect()
}

on_both_backends!(agencies_create_list_and_cancel_only_their_own_requests, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let mut minh = login(&server.url(), "minh").await;
    let mut staff = login(&server.url(), "staff").await;
    let mut hotline = login(&server.url(), "hotline").await;
    let document = pdf(1);
    let sha = upload_pdf(&mut staff, &document).await;
    let first = create(&mut staff, &request_body(&sha, "Bàn giao nhà")).await;
    assert_eq!(first["state"], "pending");
    assert_eq!(first["agency_code"], "CONG-AN-PHUONG-XA");
    assert_eq!(first["document"]["size"], document.len());
    assert_eq!(first["document"]["content_type"], "application/pdf");
    // A document kept elsewhere: hash, size, type and an https link.
    let mut external = request_body(&sha_hex(b"elsewhere"), "Hợp đồng");
    external["document"] = json!({"sha256": sha_hex(b"elsewhere"), "size": 9, "content_type": "application/pdf", "link": "https://example.gov.vn/hd.pdf"});
    let second = create(&mut staff, &external).await;
    assert_eq!(second["document"]["link"], "https://example.gov.vn/hd.pdf");
    let id = first["id"].as_str().unwrap().to_string();

    // Bad input, each with its code.
    let mut bad = request_body(&sha_hex(b"never uploaded"), "x");
    let r = post_create(&mut staff, &bad, &key()).await;
    assert_eq!(refused_with(r).await, "document_not_uploaded");
    bad = request_body(&sha, "x");
    bad["expires_at"] = json!(now_secs() - 5);
    assert_eq!(refused_with(post_create(&mut staff, &bad, &key()).await).await, "invalid_expiry");
    bad = request_body(&sha, "x");
    bad["resident_national_id"] = json!("001099000001");
    assert_eq!(refused_with(post_create(&mut staff, &bad, &key()).await).await, "resident_not_found");
    bad = request_body(&sha, "x");
    bad["document"]["link"] = json!("http://plain.example/x.pdf");
    assert_eq!(refused_with(post_create(&mut staff, &bad, &key()).await).await, "invalid_link");
    // The hotline cannot name the staff member's upload (each uploader's own files).
    let mut theirs = request_body(&sha, "x");
    theirs["document"] = json!({"sha256": sha});
    assert_eq!(refused_with(post_create(&mut hotline, &theirs, &key()).await).await, "document_not_uploaded");

    // Residents are not agencies.
    assert_eq!(lan.request("GET", "/v1/agency/signature-requests", None).await.status(), 403);
    assert_eq!(post_create(&mut lan, &request_body(&sha, "x"), &key()).await.status(), 403);

    // Listing: newest first, paged, filtered.
    let page: Value = staff.request("GET", "/v1/agency/signature-requests?limit=1", None).await.json().await.unwrap();
    assert_eq!(page["requests"].as_array().unwrap().len(), 1);
    assert_eq!(page["requests"][0]["id"], second["id"]);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let page2: Value = staff.request("GET", &format!("/v1/agency/signature-requests?limit=1&cursor={cursor}"), None).await.json().await.unwrap();
    let typed: AgencyRequestPage = serde_json::from_value(page2.clone()).unwrap();
    assert_eq!((typed.requests.len(), typed.next_cursor.as_deref()), (1, None));
    assert_eq!(typed.requests[0].resident_national_id_masked.as_deref(), Some("079*******45"));
    assert_eq!(serde_json::to_value(&typed).unwrap(), page2);
    assert_eq!(page2["requests"][0]["id"], first["id"]);
    assert!(page2["next_cursor"].is_null());
    let by_resident: Value = staff.request("GET", &format!("/v1/agency/signature-requests?resident={LAN_NID}"), None).await.json().await.unwrap();
    assert_eq!(by_resident["requests"].as_array().unwrap().len(), 2);
    let nobody: Value = staff.request("GET", "/v1/agency/signature-requests?resident=079204001234", None).await.json().await.unwrap();
    assert!(nobody["requests"].as_array().unwrap().is_empty());

    // Another agency sees none of it.
    let theirs: Value = hotline.request("GET", "/v1/agency/signature-requests", None).await.json().await.unwrap();
    assert!(theirs["requests"].as_array().unwrap().is_empty());
    for path in [format!("/v1/agency/signature-requests/{id}"), format!("/v1/agency/signature-requests/{id}/audit")] {
        let r = hotline.request("GET", &path, None).await;
        assert_eq!(r.status(), 404);
        assert_eq!(error_code(r).await, "signature_request_not_found");
    }
    assert_eq!(hotline.request("POST", &format!("/v1/agency/signature-requests/{id}/cancel"), Some(&json!({}))).await.status(), 404);

    // The request reached Lan's feed; the document is hers only.
    assert!(feed_kinds(&mut lan).await.contains(&("signature.request".into(), id.clone())));
    assert!(feed_kinds(&mut minh).await.iter().all(|(k, _)| !k.starts_with("signature.")));
    let r = raw(&mut lan, "GET", &format!("/v1/signature-requests/{id}/document"), None, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), document);
    let r = raw(&mut minh, "GET", &format!("/v1/signature-requests/{id}/document"), None, None).await;
    assert_eq!(r.status(), 404);
    let r = raw(&mut staff, "GET", &format!("/v1/signature-requests/{id}/document"), None, None).await;
    assert_eq!(r.status(), 404, "the agency is not the resident");

    // Cancel: once; the resident's feed says so.
    let r = staff.request("POST", &format!("/v1/agency/signature-requests/{id}/cancel"), Some(&json!({"reason": "Sai địa chỉ"}))).await;
    assert_eq!(r.status(), 200);
    let cancelled: Value = r.json().await.unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "Sai địa chỉ");
    let r = staff.request("POST", &format!("/v1/agency/signature-requests/{id}/cancel"), Some(&json!({}))).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "request_not_pending");
    assert!(feed_kinds(&mut lan).await.contains(&("signature.state".into(), id.clone())));
    let only_cancelled: Value = staff.request("GET", "/v1/agency/signature-requests?state=cancelled", None).await.json().await.unwrap();
    assert_eq!(only_cancelled["requests"].as_array().unwrap().len(), 1);
    let pending: Value = staff.request("GET", "/v1/agency/signature-requests?state=pending", None).await.json().await.unwrap();
    assert_eq!(pending["requests"][0]["id"], second["id"]);

    // At most 100 open requests per resident: the next one waits until some are answered.
    for i in 1..100 {
        create(&mut staff, &request_body(&sha, &format!("Yêu cầu {i}"))).await;
    }
    let r = post_create(&mut staff, &request_body(&sha, "Một nữa"), &key()).await;
    assert_eq!(r.status(), 429);
    assert_eq!(error_code(r).await, "too_many_open_requests");
    server.shutdown().await;
});

on_both_backends!(a_retried_create_answers_with_the_first_request_and_asks_the_resident_once, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let mut staff = login(&server.url(), "staff").await;
    let mut hotline = login(&server.url(), "hotline").await;
    let sha = upload_pdf(&mut staff, &pdf(7)).await;
    let body = request_body(&sha, "Bàn giao nhà");
    let k = key();

    // The answer was lost; the agency's retry sends the same key and body.
    let first = post_create(&mut staff, &body, &k).await;
    assert_eq!(first.status(), 201);
    let first = first.text().await.unwrap();
    let again = post_create(&mut staff, &body, &k).await;
    assert_eq!(again.status(), 201, "the first status code again");
    assert_eq!(again.text().await.unwrap(), first, "the first answer again, byte for byte");
    let first: Value = serde_json::from_str(&first).unwrap();
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(first["resident_national_id_masked"], json!(congdan_core::identity::national_id::mask(LAN_NID)));

    // One request, one change on the resident's feed.
    let listed: Value = staff.request("GET", &format!("/v1/agency/signature-requests?resident={LAN_NID}"), None).await.json().await.unwrap();
    let ids: Vec<&str> = listed["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()]);
    let requests_on_feed = feed_kinds(&mut lan).await.into_iter().filter(|(kind, _)| kind == "signature.request").collect::<Vec<_>>();
    assert_eq!(requests_on_feed, [("signature.request".to_string(), id.clone())]);

    // The same key for another body: refused, nothing made.
    let other = request_body(&sha, "Một yêu cầu khác");
    let r = post_create(&mut staff, &other, &k).await;
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "idempotency_key_reused");
    // No key, or a malformed one: refused before anything is looked at.
    let r = staff.request("POST", "/v1/agency/signature-requests", Some(&other)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "idempotency_key_missing");
    let r = post_create(&mut staff, &other, "has space").await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "bad_idempotency_key");
    let listed: Value = staff.request("GET", &format!("/v1/agency/signature-requests?resident={LAN_NID}"), None).await.json().await.unwrap();
    assert_eq!(listed["requests"].as_array().unwrap().len(), 1);

    // Keys are each account's own: another agency's staff using the same key makes their own request.
    let hotline_sha = upload_pdf(&mut hotline, &pdf(7)).await;
    let r = post_create(&mut hotline, &request_body(&hotline_sha, "Bàn giao nhà"), &k).await;
    assert_eq!(r.status(), 201);
    let theirs: Value = r.json().await.unwrap();
    assert_ne!(theirs["id"], first["id"]);
    assert_ne!(theirs["agency_code"], first["agency_code"]);

    // A refused create does not use up its key: once the document is uploaded, the same key and
    // body go through.
    let late = pdf(8);
    let late_body = request_body(&sha_hex(&late), "Tài liệu tải lên sau");
    let k2 = key();
    assert_eq!(refused_with(post_create(&mut staff, &late_body, &k2).await).await, "document_not_uploaded");
    upload_pdf(&mut staff, &late).await;
    let r = post_create(&mut staff, &late_body, &k2).await;
    assert_eq!(r.status(), 201);
    let late_request: Value = r.json().await.unwrap();
    let r = post_create(&mut staff, &late_body, &k2).await;
    assert_eq!(r.json::<Value>().await.unwrap()["id"], late_request["id"]);
    assert_eq!(feed_kinds(&mut lan).await.iter().filter(|(kind, _)| kind == "signature.request").count(), 3);
    server.shutdown().await;
});

/// r‖s to DER, written here independently of the server's own conversion.
fn der_of(raw: &[u8]) -> Vec<u8> {
    let int = |b: &[u8]| {
        let mut v: Vec<u8> = b.iter().skip_while(|&&x| x == 0).copied().collect();
        if v.is_empty() || v[0] >= 0x80 {
            v.insert(0, 0);
        }
        let mut out = vec![2, v.len() as u8];
        out.extend(v);
        out
    };
    let body = [int(&raw[..32]), int(&raw[32..])].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> bool {
    let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
    out.status.success()
}

/// The bundle's two checks, with OpenSSL alone: the device's ECDSA signature over the signed
/// bytes, and the server's Ed25519 attestation of the key.
fn openssl_verifies(bundle: &Value, dir: &std::path::Path) -> bool {
    openssl_verifies_part(bundle, "decision", dir)
}

fn openssl_verifies_part(bundle: &Value, part: &str, dir: &std::path::Path) -> bool {
    let b64 = |v: &Value| STANDARD.decode(v.as_str().unwrap()).unwrap();
    let d = &bundle[part];
    std::fs::write(dir.join("msg.bin"), b64(&d["signed_bytes"])).unwrap();
    std::fs::write(dir.join("sig.der"), der_of(&b64(&d["signature"]))).unwrap();
    std::fs::write(dir.join("pub.pem"), d["public_key_pem"].as_str().unwrap()).unwrap();
    let a = &bundle["attestation"];
    std::fs::write(dir.join("att.bin"), b64(&a["signed_bytes"])).unwrap();
    std::fs::write(dir.join("att.sig"), b64(&a["signature"])).unwrap();
    std::fs::write(dir.join("server.pem"), bundle["server_public_key_pem"].as_str().unwrap()).unwrap();
    openssl(dir, &["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "msg.bin"])
        && openssl(dir, &["pkeyutl", "-verify", "-pubin", "-inkey", "server.pem", "-rawin", "-in", "att.bin", "-sigfile", "att.sig"])
}

on_both_backends!(a_decision_is_accepted_once_and_its_bundle_verifies_with_openssl, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let mut staff = login(&server.url(), "staff").await;
    let lan_id = account_id(&mut lan).await;
    let sha = upload_pdf(&mut staff, &pdf(2)).await;
    let req = create(&mut staff, &request_body(&sha, "Bàn giao nhà")).await;
    let id = req["id"].as_str().unwrap().to_string();
    let r = staff.request("GET", &format!("/v1/agency/signature-requests/{id}/bundle"), None).await;
    assert_eq!(error_code(r).await, "not_decided");
    // The phone fetches the document (delivered), then approves.
    assert_eq!(raw(&mut lan, "GET", &format!("/v1/signature-requests/{id}/document"), None, None).await.status(), 200);
    let statement = signed(&decision_for(&req, &lan_id, lan.device.signer.key_id(), Intent::Approve), &lan.device.signer);
    let first_key = key();
    let r = send(&mut lan, &id, &statement, &first_key).await;
    assert_eq!(r.status(), 200);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["state"], "signed");
    // The outbox's retry: the same answer. The same statement under another key: the same too.
    let again: Value = send(&mut lan, &id, &statement, &first_key).await.json().await.unwrap();
    assert_eq!(again, receipt);
    let r = send(&mut lan, &id, &statement, &key()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), receipt);
    assert!(feed_kinds(&mut lan).await.contains(&("signature.state".into(), id.clone())));

    // The result.
    let result: Value = staff.request("GET", &format!("/v1/agency/signature-requests/{id}"), None).await.json().await.unwrap();
    assert_eq!(result["state"], "signed");
    assert_eq!(result["decision"]["intent"], "approve");
    assert_eq!(result["decision"]["device_key_id"], hex(lan.device.signer.key_id()));
    assert_eq!(result["resident_national_id_masked"], "079*******45");
    // What the agency's client reads: the core's typed record, nothing lost on the way.
    let typed: AgencySignatureRequest = serde_json::from_value(result.clone()).unwrap();
    assert_eq!(typed.decision.as_ref().map(|d| d.intent), Some(Intent::Approve));
    assert_eq!(typed.decided_at, receipt["decided_at"].as_u64());
    assert_eq!(serde_json::to_value(&typed).unwrap(), result);

    // The bundle verifies with OpenSSL alone; the server's DER matches ours.
    let bundle: Value = staff.request("GET", &format!("/v1/agency/signature-requests/{id}/bundle"), None).await.json().await.unwrap();
    assert_eq!(bundle["decoded"]["intent"], "approve");
    let typed: DecisionBundle = serde_json::from_value(bundle.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), bundle);
    assert_eq!(bundle["decoded"]["account_id"], lan_id);
    assert_eq!(bundle["attestation"]["account_id"], lan_id);
    assert_eq!(bundle["attestation"]["device_key_id"], hex(lan.device.signer.key_id()));
    let raw_sig = STANDARD.decode(bundle["decision"]["signature"].as_str().unwrap()).unwrap();
    assert_eq!(STANDARD.decode(bundle["decision"]["signature_der"].as_str().unwrap()).unwrap(), der_of(&raw_sig));
    let dir = tempfile::tempdir().unwrap();
    assert!(openssl_verifies(&bundle, dir.path()), "the genuine bundle verifies");
    // Tampered: one byte of the signed bytes, of the attestation, or another key.
    let mut tampered = bundle.clone();
    let mut msg = STANDARD.decode(bundle["decision"]["signed_bytes"].as_str().unwrap()).unwrap();
    let last = msg.len() - 1;
    msg[last] ^= 1;
    tampered["decision"]["signed_bytes"] = json!(STANDARD.encode(&msg));
    assert!(!openssl_verifies(&tampered, dir.path()), "a changed signed byte fails");
    let mut tampered = bundle.clone();
    let mut att = STANDARD.decode(bundle["attestation"]["signed_bytes"].as_str().unwrap()).unwrap();
    att[10] ^= 0x40;
    tampered["attestation"]["signed_bytes"] = json!(STANDARD.encode(&att));
    assert!(!openssl_verifies(&tampered, dir.path()), "a changed attestation fails");
    let mut tampered = bundle.clone();
    tampered["decision"]["public_key_pem"] = json!(congdan_core::signing::public_key_pem(&staff.device.signer.public_key()).unwrap());
    assert!(!openssl_verifies(&tampered, dir.path()), "another key fails");

    // The audit trail: created, delivered, decided, bundle fetched (twice), and it holds.
    let trail: Value = staff.request("GET", &format!("/v1/agency/signature-requests/{id}/audit"), None).await.json().await.unwrap();
    let kinds: Vec<&str> = trail["entries"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "delivered", "decided", "bundle_fetched"]);
    assert_eq!(trail["verification"]["valid"], true);
    server.shutdown().await;
});

on_both_backends!(every_bad_decision_is_refused_with_its_own_code, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let mut minh = login(&server.url(), "minh").await;
    let mut staff = login(&server.url(), "staff").await;
    let lan_id = account_id(&mut lan).await;
    let minh_id = account_id(&mut minh).await;
    let sha = upload_pdf(&mut staff, &pdf(3)).await;
    let req = create(&mut staff, &request_body(&sha, "Bàn giao nhà")).await;
    let id = req["id"].as_str().unwrap().to_string();
    let lan_kid = lan.device.signer.key_id().to_vec();
    let good = || decision_for(&req, &lan_id, &lan_kid, Intent::Approve);

    let mut d = good();
    d.document_sha256 = ring::digest::digest(&ring::digest::SHA256, b"another document").as_ref().try_into().unwrap();
    assert_eq!(refused_with({ let st = signed(&d, &lan.device.signer); send(&mut lan, &id, &st, &key()).await }).await, "document_mismatch");
    let mut d = good();
    d.summary_sha256 = summary_hash("Một nội dung khác");
    assert_eq!(refused_with({ let st = signed(&d, &lan.device.signer); send(&mut lan, &id, &st, &key()).await }).await, "summary_mismatch");
    let mut d = good();
    d.agency_code = "TT-1022".into();
    assert_eq!(refused_with({ let st = signed(&d, &lan.device.signer); send(&mut lan, &id, &st, &key()).await }).await, "agency_mismatch");
    let mut d = good();
    d.signed_at = (now_secs() + 3600) as u64;
    assert_eq!(refused_with({ let st = signed(&d, &lan.device.signer); send(&mut lan, &id, &st, &key()).await }).await, "signed_in_future");
    // Made with Minh's device key: not one of Lan's.
    let mut d = decision_for(&req, &lan_id, minh.device.signer.key_id(), Intent::Approve);
    d.account_id = lan_id.clone();
    assert_eq!(refused_with({ let st = signed(&d, &minh.device.signer); send(&mut lan, &id, &st, &key()).await }).await, "device_key_unknown");
    // Minh answering Lan's request.
    let d = decision_for(&req, &minh_id, minh.device.signer.key_id(), Intent::Approve);
    assert_eq!(refused_with({ let st = signed(&d, &minh.device.signer); send(&mut minh, &id, &st, &key()).await }).await, "not_your_request");
    // A flipped signature byte.
    let mut bytes = good().sign(&lan.device.signer).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 1;
    assert_eq!(refused_with(send(&mut lan, &id, &encode_statement(&bytes), &key()).await).await, "signature_invalid");
    // A revoked device key: Lan's second phone, revoked from the first (a lost phone).
    let mut lost = login(&server.url(), "lan").await;
    let keys: Value = lan.request("GET", "/v1/me/device-keys", None).await.json().await.unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);
    let lost_kid = hex(lost.device.signer.key_id());
    let r = lan.request("POST", &format!("/v1/me/device-keys/{lost_kid}/revoke"), None).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["revoked_at"].is_i64());
    assert_eq!(lost.request("GET", "/v1/me", None).await.status(), 401, "the lost phone's session ended");
    // The lost phone cannot log in again with its revoked key.
    let code = common::identity::browser_login(&server.url(), "lan").await;
    let r = common::identity::redeem(&server.url(), &lost.device, &mut None, &code).await;
    assert_eq!(error_code(r).await, "invalid_grant", "a revoked key never gets a session again");
    let r = minh.request("POST", &format!("/v1/me/device-keys/{}/revoke", hex(lan.device.signer.key_id())), None).await;
    assert_eq!(r.status(), 404, "nobody revokes someone else's key");
    let mut d = decision_for(&req, &lan_id, lost.device.signer.key_id(), Intent::Approve);
    d.signed_at = (now_secs() + 2) as u64;
    assert_eq!(refused_with({ let st = signed(&d, &lost.device.signer); send(&mut lan, &id, &st, &key()).await }).await, "device_key_revoked");
    // A statement signed for another request, replayed here.
    let other = create(&mut staff, &request_body(&sha, "Khác")).await;
    let for_other = signed(&decision_for(&other, &lan_id, lan.device.signer.key_id(), Intent::Approve), &lan.device.signer);
    assert_eq!(refused_with(send(&mut lan, &id, &for_other, &key()).await).await, "replayed");

    // None of that decided anything: the good decision goes through, then no second one.
    assert_eq!({ let st = signed(&good(), &lan.device.signer); send(&mut lan, &id, &st, &key()).await }.status(), 200);
    let mut again = good();
    again.signed_at += 1; // the same decision, signed again: another statement
    assert_eq!(refused_with({ let st = signed(&again, &lan.device.signer); send(&mut lan, &id, &st, &key()).await }).await, "already_decided");
    let mut decline = decision_for(&req, &lan_id, lan.device.signer.key_id(), Intent::Decline);
    decline.decline_reason = Some("Đổi ý".into());
    assert_eq!(refused_with({ let st = signed(&decline, &lan.device.signer); send(&mut lan, &id, &st, &key()).await }).await, "already_decided");

    // Cancelled while the phone was offline: its queued approval is refused with the reason.
    let cancelled = create(&mut staff, &request_body(&sha, "Sẽ hủy")).await;
    let cid = cancelled["id"].as_str().unwrap().to_string();
    let queued = signed(&decision_for(&cancelled, &lan_id, lan.device.signer.key_id(), Intent::Approve), &lan.device.signer);
    assert_eq!(staff.request("POST", &format!("/v1/agency/signature-requests/{cid}/cancel"), None).await.status(), 200);
    let r = send(&mut lan, &cid, &queued, &key()).await;
    assert_eq!(r.status(), 410);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_cancelled");
    assert!(body["error"]["message_vi"].as_str().unwrap().contains("hủy"));

    // Expired: signed after the expiry.
    let expiring = create(&mut staff, &request_body(&sha, "Hết hạn")).await;
    let eid = expiring["id"].as_str().unwrap().to_string();
    let past = now_secs() - 10;
    exec(&server.state.db, format!("UPDATE signature_requests SET expires_at = {past} WHERE id = '{eid}'")).await;
    let mut d = decision_for(&expiring, &lan_id, lan.device.signer.key_id(), Intent::Approve);
    d.expires_at = past as u64;
    assert_eq!(refused_with({ let st = signed(&d, &lan.device.signer); send(&mut lan, &eid, &st, &key()).await }).await, "request_expired");
    let listed: Value = staff.request("GET", "/v1/agency/signature-requests?state=expired", None).await.json().await.unwrap();
    assert_eq!(listed["requests"][0]["id"], json!(eid));
    server.shutdown().await;
});

/// `congdan-server audit verify <id>` on the test database.
fn audit_cli(database_url: &str, id: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_congdan-server"))
        .args(["--database-url", database_url, "audit", "verify", id])
        .output()
        .unwrap()
}

async fn trail(s: &mut Session, id: &str) -> Value {
    s.request("GET", &format!("/v1/agency/signature-requests/{id}/audit"), None).await.json().await.unwrap()
}

on_both_backends!(the_audit_trail_shows_any_change_to_a_stored_entry, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let mut staff = login(&server.url(), "staff").await;
    let lan_id = account_id(&mut lan).await;
    let sha = upload_pdf(&mut staff, &pdf(4)).await;
    let req = create(&mut staff, &request_body(&sha, "Nhật ký")).await;
    let id = req["id"].as_str().unwrap().to_string();
    assert_eq!(raw(&mut lan, "GET", &format!("/v1/signature-requests/{id}/document"), None, None).await.status(), 200);
    assert_eq!(raw(&mut lan, "GET", &format!("/v1/signature-requests/{id}/document"), None, None).await.status(), 200);
    let statement = signed(&decision_for(&req, &lan_id, lan.device.signer.key_id(), Intent::Approve), &lan.device.signer);
    assert_eq!(send(&mut lan, &id, &statement, &key()).await.status(), 200);
    assert_eq!(staff.request("GET", &format!("/v1/agency/signature-requests/{id}/bundle"), None).await.status(), 200);
    let db = server.state.db.clone();
    let (entries, verification) = congdan_server::signing::audit::check(&db, &id).await.unwrap().unwrap();
    assert!(verification.valid);
    assert_eq!(entries.len(), 4, "delivered once, however often fetched");
    let cli = audit_cli(&b.url, &id);
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    assert!(String::from_utf8_lossy(&cli.stdout).contains("audit trail intact: 4 entries"));

    // Each entry changed in each column, one at a time, is caught; then put back.
    for e in &entries {
        let seq = e.seq;
        let changes = [
            ("detail", "'{\"forged\":true}'".to_string(), format!("'{}'", e.detail.replace('\'', "''"))),
            ("at", (e.at + 1).to_string(), e.at.to_string()),
            ("actor", "'someone-else'".into(), format!("'{}'", e.actor)),
            ("kind", "'cancelled'".into(), format!("'{}'", e.kind)),
        ];
        for (column, forged, original) in changes {
            exec(&db, format!("UPDATE signature_audit SET {column} = {forged} WHERE request_id = '{id}' AND seq = {seq}")).await;
            let t = trail(&mut staff, &id).await;
            assert_eq!(t["verification"]["valid"], false, "{column} of entry {seq}");
            assert_eq!(t["verification"]["broken_at"], seq);
            exec(&db, format!("UPDATE signature_audit SET {column} = {original} WHERE request_id = '{id}' AND seq = {seq}")).await;
        }
    }
    assert_eq!(trail(&mut staff, &id).await["verification"]["valid"], true, "restored");
    // The last entry removed: the request row still names the head it had.
    exec(&db, format!("DELETE FROM signature_audit WHERE request_id = '{id}' AND seq = 4")).await;
    let (_, v) = congdan_server::signing::audit::check(&db, &id).await.unwrap().unwrap();
    assert!(!v.valid);
    let cli = audit_cli(&b.url, &id);
    assert!(!cli.status.success());
    assert!(String::from_utf8_lossy(&cli.stderr).contains("audit trail BROKEN"));
    server.shutdown().await;
});

/// A hotline report (PA-1022: no attachments needed) as the phone submits it.
fn report(draft: &str) -> Value {
    json!({
        "draft_id": draft,
        "procedure_code": "PA-1022",
        "values": {
            "category": {"type": "choice", "value": ["flooding"]},
            "location": {"type": "location", "value": {"lat": 10.7769, "lon": 106.7009}},
            "description": {"type": "text", "value": "Nước ngập tới đầu gối trên đường Nguyễn Hữu Cảnh."},
            "reporter_name": {"type": "text", "value": "Nguyễn Thị Lan"},
            "reporter_phone": {"type": "text", "value": "0903123456"}
        }
    })
}

/// The phone's dossier signature over `body`'s values and attachments.
fn dossier_signature(body: &Value, account: &str, signer: &dyn Signer) -> String {
    use congdan_core::signing::wire::DossierSignature;
    let values = serde_json::from_value(body["values"].clone()).unwrap();
    let attachments = serde_json::from_value(body.get("attachments").cloned().unwrap_or(json!({}))).unwrap();
    let d = DossierSignature {
        account_id: account.into(),
        procedure_code: body["procedure_code"].as_str().unwrap().into(),
        draft_id: body["draft_id"].as_str().unwrap().into(),
        content_sha256: congdan_core::signing::dossier_content_hash(&values, &attachments),
        signed_at: now_secs() as u64,
    };
    encode_statement(&d.sign(signer).unwrap())
}

on_both_backends!(a_signed_case_gets_a_bundle_and_an_unsigned_one_is_marked, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let mut hotline = login(&server.url(), "hotline").await;
    let lan_id = account_id(&mut lan).await;
    let mut body = report(&uuid::Uuid::new_v4().to_string());
    body["dossier_signature"] = json!(dossier_signature(&body, &lan_id, &lan.device.signer));
    let r = lan.command("/v1/cases", &body, &key()).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let signed_case: Value = r.json().await.unwrap();
    let case_id = signed_case["case_id"].as_str().unwrap().to_string();
    let view: Value = hotline.request("GET", &format!("/v1/agency/cases/{case_id}"), None).await.json().await.unwrap();
    assert_eq!(view["signed"], true);
    let r = hotline.request("GET", &format!("/v1/agency/cases/{case_id}/signature-bundle"), None).await;
    assert_eq!(r.status(), 200);
    let bundle: Value = r.json().await.unwrap();
    assert_eq!(bundle["decoded"]["account_id"], lan_id);
    let typed: DossierBundle = serde_json::from_value(bundle.clone()).unwrap();
    assert_eq!((typed.case_id.as_str(), typed.decoded.content_sha256.len()), (case_id.as_str(), 64));
    assert_eq!(serde_json::to_value(&typed).unwrap(), bundle);
    let dir = tempfile::tempdir().unwrap();
    assert!(openssl_verifies_part(&bundle, "dossier", dir.path()), "the case bundle verifies with openssl");
    let mut tampered = bundle.clone();
    let mut msg = STANDARD.decode(bundle["dossier"]["signed_bytes"].as_str().unwrap()).unwrap();
    msg[20] ^= 1;
    tampered["dossier"]["signed_bytes"] = json!(STANDARD.encode(&msg));
    assert!(!openssl_verifies_part(&tampered, "dossier", dir.path()));

    // A signature over other content, or by another resident's key: refused.
    let mut changed = report(&uuid::Uuid::new_v4().to_string());
    changed["dossier_signature"] = json!(dossier_signature(&changed, &lan_id, &lan.device.signer));
    changed["values"]["description"] = json!({"type": "text", "value": "Đã sửa sau khi ký."});
    assert_eq!(refused_with(lan.command("/v1/cases", &changed, &key()).await).await, "dossier_content_mismatch");
    let mut staff = login(&server.url(), "staff").await;
    let mut foreign = report(&uuid::Uuid::new_v4().to_string());
    foreign["dossier_signature"] = json!(dossier_signature(&foreign, &lan_id, &staff.device.signer));
    assert_eq!(refused_with(lan.command("/v1/cases", &foreign, &key()).await).await, "device_key_unknown");
    assert_eq!(staff.request("GET", &format!("/v1/agency/cases/{case_id}/signature-bundle"), None).await.status(), 404, "another agency");

    // No signature (an older app): accepted, marked unsigned.
    let r = lan.command("/v1/cases", &report(&uuid::Uuid::new_v4().to_string()), &key()).await;
    assert_eq!(r.status(), 201);
    let unsigned_id = r.json::<Value>().await.unwrap()["case_id"].as_str().unwrap().to_string();
    let view: Value = hotline.request("GET", &format!("/v1/agency/cases/{unsigned_id}"), None).await.json().await.unwrap();
    assert_eq!(view["signed"], false);
    let r = hotline.request("GET", &format!("/v1/agency/cases/{unsigned_id}/signature-bundle"), None).await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "case_unsigned");
    server.shutdown().await;
});
