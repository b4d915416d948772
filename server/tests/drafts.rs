//! Drafts across a resident's devices on both databases: `PUT /v1/drafts/{id}` merges per field
//! by hybrid logical clock, is idempotent per key, belongs to its resident, refuses stamps from
//! the future, and puts the merged draft on the resident's account feed.

mod common;

use common::identity::{error_code, login, send_with_proof, Body, Session};
use common::Backend;
use serde_json::{json, Value};

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn stamp(wall_ms: u64, node: &str) -> String {
    format!("{wall_ms:013}-000000-{node}")
}

fn text(s: &str) -> Value {
    json!({"type": "text", "value": s})
}

fn backup(id: &str, fields: Vec<(&str, Option<Value>, String)>) -> Value {
    let fields: Vec<Value> =
        fields.into_iter().map(|(f, v, h)| json!({"field_id": f, "value": v, "hlc": h})).collect();
    json!({"draft_id": id, "procedure_code": "PA-1022", "title": "Ngập đường", "deleted": false, "fields": fields})
}

async fn put(s: &mut Session, id: &str, body: &Value, key: &str) -> (u16, Value) {
    let token = s.tokens.access_token.clone();
    let path = format!("/v1/drafts/{id}");
    let r = send_with_proof(&s.base, &s.device, &mut s.nonce, "PUT", &path, Some(&token), Body::Command(body, key)).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn value_of<'a>(draft: &'a Value, field: &str) -> &'a Value {
    draft["fields"].as_array().unwrap().iter().find(|f| f["field_id"] == field).map(|f| &f["value"]).unwrap()
}

on_both_backends!(two_devices_merge_per_field_and_the_feed_carries_the_result, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    // Two phones of the same resident.
    let mut phone_a = login(&base, "lan").await;
    let mut phone_b = login(&base, "lan").await;
    let t = now_ms() - 60_000;

    let a = backup("draft-x", vec![
        ("description", Some(text("Nước ngập tới đầu gối.")), stamp(t + 10, "aaaa")),
        ("category", Some(json!({"type": "choice", "value": ["flooding"]})), stamp(t + 30, "aaaa")),
    ]);
    let (status, merged) = put(&mut phone_a, "draft-x", &a, "a-1").await;
    assert_eq!(status, 200, "{merged}");
    // B edits the description later and clears the category earlier than A's choice.
    let b_body = backup("draft-x", vec![
        ("description", Some(text("Nước ngập tới thắt lưng.")), stamp(t + 20, "bbbb")),
        ("category", None, stamp(t + 5, "bbbb")),
        ("location", Some(json!({"type": "location", "value": {"lat": 10.77, "lon": 106.7}})), stamp(t + 1, "bbbb")),
    ]);
    let (status, merged) = put(&mut phone_b, "draft-x", &b_body, "b-1").await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(value_of(&merged, "description"), &text("Nước ngập tới thắt lưng."), "the later edit wins");
    assert_eq!(value_of(&merged, "category")["value"], json!(["flooding"]), "an older clear loses");
    assert_eq!(value_of(&merged, "location")["value"]["lat"], 10.77);
    // A newer clear wins.
    let clear = backup("draft-x", vec![("category", None, stamp(t + 40, "aaaa"))]);
    let (status, cleared) = put(&mut phone_a, "draft-x", &clear, "a-2").await;
    assert_eq!(status, 200);
    assert_eq!(value_of(&cleared, "category"), &Value::Null);

    // Idempotent: the same key and body answer the first answer again, no new change.
    let (status, again) = put(&mut phone_b, "draft-x", &b_body, "b-1").await;
    assert_eq!((status, &again), (200, &merged));
    let (status, reused) = put(&mut phone_b, "draft-x", &clear, "b-1").await;
    assert_eq!((status, reused["error"]["code"].as_str()), (422, Some("idempotency_key_reused")));

    // Each accepted backup put one draft.upsert on the resident's feed, seen by both phones.
    let r = phone_b.request("POST", "/v1/sync/pull", Some(&json!({"feeds": [{"feed": "account"}]}))).await;
    let page: Value = r.json().await.unwrap();
    let upserts: Vec<&Value> =
        page["feeds"][0]["changes"].as_array().unwrap().iter().filter(|c| c["kind"] == "draft.upsert").collect();
    assert_eq!(upserts.len(), 3);
    assert_eq!(upserts[2]["key"], "draft-x");
    assert_eq!(upserts[2]["data"], cleared);

    // Delete on one device: the deletion merges by its own stamp.
    let mut deleted = backup("draft-x", vec![]);
    deleted["deleted"] = json!(true);
    deleted["deleted_hlc"] = json!(stamp(t + 50, "bbbb"));
    let (status, gone) = put(&mut phone_b, "draft-x", &deleted, "b-2").await;
    assert_eq!((status, gone["deleted"].as_bool()), (200, Some(true)));
    assert_eq!(value_of(&gone, "description"), &text("Nước ngập tới thắt lưng."), "the values stay (undo)");

    // Another resident: the draft id is not theirs.
    let mut minh = login(&base, "minh").await;
    let (status, body) = put(&mut minh, "draft-x", &a, "m-1").await;
    assert_eq!(status, 404, "{body}");
    let r = minh.request("POST", "/v1/sync/pull", Some(&json!({"feeds": [{"feed": "account"}]}))).await;
    let page: Value = r.json().await.unwrap();
    assert!(page["feeds"][0]["changes"].as_array().unwrap().iter().all(|c| c["kind"] != "draft.upsert"));
    server.shutdown().await;
});

on_both_backends!(stamps_from_the_future_and_oversize_drafts_are_refused, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let future = backup("d-f", vec![("description", Some(text("x")), stamp(now_ms() + 2 * 3_600_000, "aaaa"))]);
    let (status, body) = put(&mut lan, "d-f", &future, "k-1").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("clock_skew")));
    let big = backup("d-f", vec![("description", Some(text(&"a".repeat(17 * 1024))), stamp(now_ms(), "aaaa"))]);
    let (status, body) = put(&mut lan, "d-f", &big, "k-2").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("draft_too_large")));
    let many: Vec<(String, Option<Value>, String)> =
        (0..201).map(|i| (format!("f{i}"), Some(text("x")), stamp(now_ms(), "aaaa"))).collect();
    let many = backup("d-f", many.iter().map(|(f, v, h)| (f.as_str(), v.clone(), h.clone())).collect());
    let (status, body) = put(&mut lan, "d-f", &many, "k-3").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("draft_too_large")));
    let (status, body) = put(&mut lan, "other-id", &backup("d-f", vec![]), "k-4").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("draft_id_mismatch")));
    // No key: refused before anything is done; unauthenticated: 401.
    let r = lan.request("PUT", "/v1/drafts/d-f", Some(&backup("d-f", vec![]))).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "idempotency_key_missing");
    let r = common::identity::http().put(format!("{}/v1/drafts/d-f", server.url())).json(&backup("d-f", vec![])).send().await.unwrap();
    assert_eq!(r.status(), 401);
    server.shutdown().await;
});
