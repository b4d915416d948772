//! Case submission on both databases: exactly once per idempotency key, the server validating
//! again, human-readable numbers unique across instances, the status on the resident's feed.

mod common;

use common::identity::{error_code, login, send_with_proof, Body, Session};
use common::Backend;
use congdan_core::drafts::wire::CaseReceipt;
use congdan_server::cases::idempotency;
use serde_json::{json, Value};

fn report(draft: &str, description: &str) -> Value {
    json!({
        "draft_id": draft,
        "procedure_code": "PA-1022",
        "values": {
            "category": {"type": "choice", "value": ["flooding"]},
            "location": {"type": "location", "value": {"lat": 10.7769, "lon": 106.7009}},
            "description": {"type": "text", "value": description}
        }
    })
}

async fn submit(s: &mut Session, body: &Value, key: &str) -> (u16, String) {
    let r = s.command("/v1/cases", body, key).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn pull_account(s: &mut Session) -> Value {
    let r = s.request("POST", "/v1/sync/pull", Some(&json!({"feeds": [{"feed": "account"}]}))).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

on_both_backends!(a_submission_is_done_once_per_key, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let body = report("draft-1", "Nước ngập tới đầu gối trên đường Nguyễn Hữu Cảnh.");

    let (status, first) = submit(&mut lan, &body, "key-1").await;
    assert_eq!(status, 201, "{first}");
    let receipt: CaseReceipt = serde_json::from_str(&first).unwrap();
    assert!(receipt.case_number.starts_with("HCM-20") && receipt.case_number.len() == "HCM-2026-000001".len());
    assert_eq!(receipt.status, "received");

    // The same key again (a retry after a lost answer): the same answer, no second case.
    let (status, again) = submit(&mut lan, &body, "key-1").await;
    assert_eq!((status, again.as_str()), (201, first.as_str()));
    // The same key with another body: refused.
    let other = report("draft-1", "Một nội dung khác hẳn, cũng đủ dài.");
    let r = lan.command("/v1/cases", &other, "key-1").await;
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "idempotency_key_reused");
    // The same draft from the resident's other device, under its own key: the same case.
    let (status, other_device) = submit(&mut lan, &body, "key-from-the-tablet").await;
    assert_eq!(status, 201, "{other_device}");
    assert_eq!(serde_json::from_str::<CaseReceipt>(&other_device).unwrap().case_number, receipt.case_number);
    // No key: refused before anything is done.
    let r = lan.request("POST", "/v1/cases", Some(&body)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "idempotency_key_missing");

    // A key whose first request is still being processed (claimed, not finished): 409.
    let busy = report("draft-2", "Đèn đường hỏng đã ba ngày ở hẻm 12.");
    let fingerprint = idempotency::fingerprint(serde_json::to_vec(&busy).unwrap().as_slice());
    let me: Value = lan.request("GET", "/v1/me", None).await.json().await.unwrap();
    let account = me["account_id"].as_str().unwrap().to_string();
    assert_eq!(idempotency::claim(&server.state.db, &account, "key-busy", fingerprint).await.unwrap(), idempotency::Claim::Fresh);
    let r = lan.command("/v1/cases", &busy, "key-busy").await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "request_in_progress");
    // Its holder let go without committing (a released or lapsed lease): the retry takes the key
    // and does the work, once; another body under the key is still a reuse.
    idempotency::release(&server.state.db, &account, "key-busy").await.unwrap();
    let (status, first) = submit(&mut lan, &busy, "key-busy").await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(submit(&mut lan, &busy, "key-busy").await, (201, first));
    let (status, reused) = submit(&mut lan, &report("draft-9", "Một nội dung khác hẳn."), "key-busy").await;
    assert_eq!(status, 422, "{reused}");

    // The server validates again: a bad submission is refused with the field issues, and a
    // retry of it is refused the same way.
    let bad = json!({"draft_id": "draft-3", "procedure_code": "PA-1022", "values": {
        "category": {"type": "choice", "value": ["volcano"]},
        "description": {"type": "number", "value": 5}
    }});
    let (status, refused) = submit(&mut lan, &bad, "key-bad").await;
    assert_eq!(status, 422, "{refused}");
    let refused_json: Value = serde_json::from_str(&refused).unwrap();
    assert_eq!(refused_json["error"]["code"], "validation_failed");
    let issues = refused_json["error"]["details"]["issues"].as_array().unwrap();
    let fields: Vec<&str> = issues.iter().map(|i| i["field_id"].as_str().unwrap()).collect();
    assert!(fields.contains(&"category") && fields.contains(&"location") && fields.contains(&"description"), "{fields:?}");
    assert_eq!(submit(&mut lan, &bad, "key-bad").await, (422, refused));
    // Unknown procedures and unknown keys in the body are refused too.
    let (status, _) = submit(&mut lan, &json!({"draft_id": "d", "procedure_code": "NOPE", "values": {}}), "key-nope").await;
    assert_eq!(status, 422);
    let (status, _) = submit(&mut lan, &json!({"draft_id": "d", "procedure_code": "PA-1022", "values": {}, "x": 1}), "key-x").await;
    assert_eq!(status, 422);

    // Keys belong to their resident: another resident's same key is another command.
    let mut minh = login(&base, "minh").await;
    let (status, minhs) = submit(&mut minh, &report("m-1", "Cây xanh nghiêng sắp đổ trước trường học."), "key-1").await;
    assert_eq!(status, 201);
    let minhs: CaseReceipt = serde_json::from_str(&minhs).unwrap();
    assert_ne!(minhs.case_number, receipt.case_number);

    // The case reaches the resident's own feed, and only theirs.
    let page = pull_account(&mut lan).await;
    let cases: Vec<&Value> = page["feeds"][0]["changes"].as_array().unwrap().iter().filter(|c| c["kind"] == "case.status").collect();
    assert_eq!(cases.len(), 2, "draft-1 and draft-2, once each");
    assert_eq!(cases[0]["data"]["case_number"], receipt.case_number.as_str());
    assert_eq!(cases[0]["data"]["draft_id"], "draft-1");
    server.shutdown().await;
});

on_both_backends!(racing_retries_of_one_key_make_one_case, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let first = login(&base, "lan").await;
    let device = std::sync::Arc::new(first.device);
    let token = first.tokens.access_token.clone();
    let body = report("draft-race", "Rác thải chất đống ở chợ, bốc mùi nhiều ngày.");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        // Each racer is the same phone (same token and key) sending its own fresh proof.
        let (base, device, token, body, mut nonce) = (base.clone(), device.clone(), token.clone(), body.clone(), first.nonce.clone());
        tasks.push(tokio::spawn(async move {
            let r = send_with_proof(&base, &device, &mut nonce, "POST", "/v1/cases", Some(&token), Body::Command(&body, "race-key")).await;
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    let mut numbers = std::collections::BTreeSet::new();
    for t in tasks {
        let (status, text) = t.await.unwrap();
        match status {
            201 => {
                numbers.insert(serde_json::from_str::<CaseReceipt>(&text).unwrap().case_number);
            }
            409 => {}
            other => panic!("unexpected {other}: {text}"),
        }
    }
    assert_eq!(numbers.len(), 1, "one case whatever the race: {numbers:?}");
    server.shutdown().await;
});
