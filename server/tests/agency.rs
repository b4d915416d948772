//! The agency side of cases on both databases: an agency lists and opens only its own cases,
//! moves them through the allowed statuses exactly once per key, asks for more information, and
//! the resident answers; every step reaches the resident's feed with the whole timeline.
//! Anonymous hotline reports never show the agency who sent them.

mod common;

use common::identity::{error_code, login, Session};
use common::Backend;
use congdan_core::drafts::wire::CaseReceipt;
use congdan_server::cases::store;
use congdan_server::RunningServer;
use serde_json::{json, Value};

/// A hotline report (PA-1022, agency TT-1022) with the reporter's own name and phone.
fn report(draft: &str, anonymous: bool) -> Value {
    let mut body = json!({
        "draft_id": draft,
        "procedure_code": "PA-1022",
        "values": {
            "category": {"type": "choice", "value": ["flooding"]},
            "location": {"type": "location", "value": {"lat": 10.7769, "lon": 106.7009}},
            "description": {"type": "text", "value": "Nước ngập tới đầu gối trên đường Nguyễn Hữu Cảnh."},
            "reporter_name": {"type": "text", "value": "Nguyễn Thị Lan"},
            "reporter_phone": {"type": "text", "value": "0903123456"}
        }
    });
    if anonymous {
        body["anonymous"] = json!(true);
    }
    body
}

fn date_plus(days: i64) -> String {
    congdan_core::drafts::validation::CalendarDate::today_utc_plus_7().add_days(days as i32).to_string()
}

/// A temporary-residence registration (CT-TAM-TRU, agency CONG-AN-PHUONG-XA).
fn tam_tru(draft: &str) -> Value {
    json!({
        "draft_id": draft,
        "procedure_code": "CT-TAM-TRU",
        "values": {
            "tenant_national_id": {"type": "text", "value": "079204001234"},
            "tenant_full_name": {"type": "text", "value": "Trần Văn Minh"},
            "tenant_date_of_birth": {"type": "date", "value": "2004-03-15"},
            "tenant_phone": {"type": "text", "value": "0912345678"},
            "temporary_address": {"type": "text", "value": "12 Lê Lợi, phường Bến Thành, TP. Hồ Chí Minh"},
            "stay_from": {"type": "date", "value": date_plus(1)},
            "stay_until": {"type": "date", "value": date_plus(300)},
            "relationship_to_owner": {"type": "choice", "value": ["tenant"]},
            "owner_national_id": {"type": "text", "value": "079070005678"},
            "owner_full_name": {"type": "text", "value": "Phạm Văn Tâm"},
            "host_consent": {"type": "choice", "value": ["agree"]}
        },
    })
}

/// A ward-police case of `account`, written straight into the store: its procedure requires an
/// uploaded rental contract, which is not what these tests are about (see tests/cases.rs and
/// the blob tests for submissions with files).
async fn insert_tam_tru(server: &RunningServer, account: &str, draft: &str) -> String {
    insert_tam_tru_due(server, account, draft, date_plus(3)).await
}

async fn insert_tam_tru_due(server: &RunningServer, account: &str, draft: &str, due_date: String) -> String {
    let body = tam_tru(draft);
    let id = format!("case-{draft}");
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst) as i64;
    let case = store::NewCase {
        id: id.clone(),
        account_id: account.to_string(),
        procedure_code: "CT-TAM-TRU".into(),
        agency_code: "CONG-AN-PHUONG-XA".into(),
        draft_id: draft.to_string(),
        values_json: body["values"].to_string(),
        received_at_ms: 1_763_859_600_000 + n * 1000,
        due_date,
        anonymous: false,
        key: format!("direct-{draft}"),
        attachments: Default::default(),
    };
    store::create(&server.state.db, case, 2026).await.unwrap();
    id
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

async fn account_of(s: &mut Session) -> String {
    let (_, me) = get(s, "/v1/me").await;
    me["account_id"].as_str().unwrap().to_string()
}

async fn submit(s: &mut Session, body: &Value, key: &str) -> CaseReceipt {
    let r = s.command("/v1/cases", body, key).await;
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn get(s: &mut Session, path: &str) -> (u16, Value) {
    let r = s.request("GET", path, None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn command(s: &mut Session, path: &str, body: Value, key: &str) -> (u16, Value) {
    let r = s.command(path, &body, key).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn set_status(s: &mut Session, case: &str, body: Value, key: &str) -> (u16, Value) {
    command(s, &format!("/v1/agency/cases/{case}/status"), body, key).await
}

/// The latest `case.status` data of `case` on the resident's feed.
async fn latest_on_feed(s: &mut Session, case: &str) -> Value {
    let r = s.request("POST", "/v1/sync/pull", Some(&json!({"feeds": [{"feed": "account"}], "limit": 200}))).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    page["feeds"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "case.status" && c["key"] == case)
        .last()
        .map(|c| c["data"].clone())
        .expect("the case is on the resident's feed")
}

fn statuses(view: &Value) -> Vec<&str> {
    view["timeline"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect()
}

on_both_backends!(an_agency_lists_and_opens_only_its_own_cases, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut staff = login(&base, "staff").await;
    let mut hotline = login(&base, "hotline").await;

    let lan_id = account_of(&mut lan).await;
    let mut ward = Vec::new();
    for n in 0..5 {
        ward.push(insert_tam_tru(&server, &lan_id, &format!("tt-{n}")).await);
    }
    let flood = submit(&mut lan, &report("r-1", false), "r-key-1").await;

    // Newest first, only the ward police's cases, paged by an opaque cursor.
    let (status, page) = get(&mut staff, "/v1/agency/cases?limit=2").await;
    assert_eq!(status, 200, "{page}");
    let mut seen: Vec<String> = Vec::new();
    let mut page = page;
    loop {
        for c in page["cases"].as_array().unwrap() {
            assert_eq!(c["procedure_code"], "CT-TAM-TRU");
            assert_eq!(c["status"], "received");
            assert_eq!(c["overdue"], false);
            assert!(c["due_date"].is_string() && c["received_at_ms"].is_i64() && c["case_number"].is_string());
            seen.push(c["case_id"].as_str().unwrap().to_string());
        }
        let Some(cursor) = page["next_cursor"].as_str().map(str::to_string) else { break };
        assert!(page["cases"].as_array().unwrap().len() == 2);
        let (status, next) = get(&mut staff, &format!("/v1/agency/cases?limit=2&cursor={cursor}")).await;
        assert_eq!(status, 200);
        page = next;
    }
    let newest_first: Vec<String> = ward.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first, "every ward case exactly once across the pages, newest first");

    // Filters.
    let (_, filtered) = get(&mut staff, "/v1/agency/cases?procedure=PA-1022").await;
    assert_eq!(filtered["cases"].as_array().unwrap().len(), 0);
    let (_, by_status) = get(&mut staff, "/v1/agency/cases?status=processing").await;
    assert_eq!(by_status["cases"].as_array().unwrap().len(), 0);
    let (status, _) = set_status(&mut staff, &ward[0], json!({"status": "processing"}), "s-1").await;
    assert_eq!(status, 200);
    let (_, by_status) = get(&mut staff, "/v1/agency/cases?status=processing").await;
    let ids: Vec<&str> = by_status["cases"].as_array().unwrap().iter().map(|c| c["case_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![ward[0].as_str()]);
    for bad in ["limit=0", "limit=101", "status=lost", "cursor=zz", "limit=x"] {
        let (status, body) = get(&mut staff, &format!("/v1/agency/cases?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // A case past its due date and not finished is overdue; once done it is not.
    let late = insert_tam_tru_due(&server, &lan_id, "tt-late", date_plus(-2)).await;
    let (_, page) = get(&mut staff, "/v1/agency/cases?limit=1").await;
    assert_eq!((page["cases"][0]["case_id"].as_str(), page["cases"][0]["overdue"].as_bool()), (Some(late.as_str()), Some(true)));
    set_status(&mut staff, &late, json!({"status": "done"}), "late-done").await;
    let (_, page) = get(&mut staff, "/v1/agency/cases?limit=1").await;
    assert_eq!(page["cases"][0]["overdue"], false);

    // One case in full: values, timeline, the resident's name and masked national ID.
    let (status, case) = get(&mut staff, &format!("/v1/agency/cases/{}", ward[1])).await;
    assert_eq!(status, 200);
    assert_eq!(case["resident"]["display_name"], "Nguyễn Thị Lan");
    assert_eq!(case["resident"]["national_id_masked"], "079*******45");
    assert_eq!(case["values"]["tenant_full_name"]["value"], "Trần Văn Minh");
    assert_eq!(statuses(&case), vec!["received"]);
    assert!(!case.to_string().contains("079165012345"), "the full national ID never leaves");

    // Another agency's case: 404 whether it exists or not, for reading and for acting.
    let (status, body) = get(&mut staff, &format!("/v1/agency/cases/{}", flood.case_id)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("case_not_found")));
    let (status, _) = get(&mut staff, "/v1/agency/cases/no-such-case").await;
    assert_eq!(status, 404);
    let (status, body) = set_status(&mut staff, &flood.case_id, json!({"status": "processing"}), "s-2").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("case_not_found")));
    let (status, _) = get(&mut hotline, &format!("/v1/agency/cases/{}", flood.case_id)).await;
    assert_eq!(status, 200, "the hotline sees its own report");
    let (_, hot) = get(&mut hotline, "/v1/agency/cases").await;
    assert_eq!(hot["cases"].as_array().unwrap().len(), 1);

    // A resident is no agency.
    for path in ["/v1/agency/cases".to_string(), format!("/v1/agency/cases/{}", ward[0])] {
        let r = lan.request("GET", &path, None).await;
        assert_eq!(r.status(), 403);
        assert_eq!(error_code(r).await, "forbidden");
    }
    let r = lan.command(&format!("/v1/agency/cases/{}/status", ward[0]), &json!({"status": "done"}), "l-1").await;
    assert_eq!(r.status(), 403);
    server.shutdown().await;
});

on_both_backends!(status_commands_follow_the_transitions_once_per_key, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut staff = login(&base, "staff").await;
    let lan_id = account_of(&mut lan).await;
    let case = insert_tam_tru(&server, &lan_id, "tt-a").await;

    // Bad bodies are refused before anything happens.
    for (body, code, key) in [
        (json!({"status": "received"}), "invalid_status"),
        (json!({"status": "needs_information"}), "message_required"),
        (json!({"status": "rejected", "message": "   "}), "message_required"),
        (json!({"status": "processing", "message": "x".repeat(1001)}), "invalid_message"),
        (json!({"status": "processing", "requested_fields": ["tenant_phone"]}), "invalid_body"),
        (json!({"status": "processing", "result_document": "https://x"}), "invalid_body"),
        (json!({"status": "processing", "surprise": 1}), "invalid_body"),
    ]
    .into_iter()
    .enumerate()
    .map(|(n, (body, code))| (body, code, format!("bad-{n}")))
    {
        let (status, answer) = set_status(&mut staff, &case, body.clone(), &key).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(code)), "{body}");
    }
    let (status, answer) =
        set_status(&mut staff, &case, json!({"status": "needs_information", "message": "Thiếu", "requested_fields": ["nope"]}), "k-unknown").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("unknown_field")));
    let r = staff.request("POST", &format!("/v1/agency/cases/{case}/status"), Some(&json!({"status": "processing"}))).await;
    assert_eq!(r.status(), 400, "a command needs its key");

    // received -> processing, exactly once per key.
    let (status, first) = set_status(&mut staff, &case, json!({"status": "processing", "message": "Đang xử lý"}), "k-1").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "processing");
    let (status, again) = set_status(&mut staff, &case, json!({"status": "processing", "message": "Đang xử lý"}), "k-1").await;
    assert_eq!((status, &again), (200, &first), "a retry gets the first answer");
    let (status, reused) = set_status(&mut staff, &case, json!({"status": "done"}), "k-1").await;
    assert_eq!((status, reused["error"]["code"].as_str()), (422, Some("idempotency_key_reused")));
    // processing -> processing is no transition.
    let (status, answer) = set_status(&mut staff, &case, json!({"status": "processing"}), "k-2").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("invalid_transition")));

    // processing -> rejected (final): nothing moves it any more.
    let (status, rejected) = set_status(&mut staff, &case, json!({"status": "rejected", "message": "Hồ sơ trùng."}), "k-3").await;
    assert_eq!(status, 200);
    assert_eq!(statuses(&rejected), vec!["received", "processing", "rejected"]);
    for (n, to) in ["processing", "done"].iter().enumerate() {
        let (status, answer) = set_status(&mut staff, &case, json!({"status": to}), &format!("k-final-{n}")).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("invalid_transition")));
    }
    let seen = latest_on_feed(&mut lan, &case).await;
    assert_eq!(seen["status"], "rejected");
    assert_eq!(seen["timeline"][2]["message"], "Hồ sơ trùng.");
    assert_eq!(seen["timeline"][1]["message"], "Đang xử lý");

    // received -> done directly, with a result document.
    let other = insert_tam_tru(&server, &lan_id, "tt-b").await;
    let (status, done) =
        set_status(&mut staff, &other, json!({"status": "done", "result_document": "https://dvc.hcm.gov.vn/kq/123"}), "k-4").await;
    assert_eq!(status, 200);
    assert_eq!(done["result_document"], "https://dvc.hcm.gov.vn/kq/123");
    assert_eq!(latest_on_feed(&mut lan, &other).await["result_document"], "https://dvc.hcm.gov.vn/kq/123");
    server.shutdown().await;
});

on_both_backends!(more_information_is_asked_answered_and_the_case_done, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut minh = login(&base, "minh").await;
    let mut staff = login(&base, "staff").await;
    let lan_id = account_of(&mut lan).await;
    let case = insert_tam_tru(&server, &lan_id, "tt-info").await;
    let answer_path = format!("/v1/cases/{case}/answer");
    let phone = |p: &str| json!({"values": {"tenant_phone": {"type": "text", "value": p}}});

    // Not asked yet: an answer is refused.
    let (status, body) = command(&mut lan, &answer_path, phone("0987654321"), "a-early").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invalid_transition")));

    let ask = json!({"status": "needs_information", "message": "Số điện thoại người thuê không liên lạc được.",
                     "requested_fields": ["tenant_phone"]});
    let (status, asked) = set_status(&mut staff, &case, ask, "ask-1").await;
    assert_eq!(status, 200, "{asked}");
    let seen = latest_on_feed(&mut lan, &case).await;
    assert_eq!(seen["status"], "needs_information");
    assert_eq!(seen["requested_fields"], json!(["tenant_phone"]));
    assert_eq!(seen["timeline"][1]["message"], "Số điện thoại người thuê không liên lạc được.");
    let (status, body) = set_status(&mut staff, &case, json!({"status": "done"}), "done-early").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invalid_transition")), "waits for the resident");

    // Refused answers: a field not asked for, a bad value, another resident's case.
    let (status, body) = command(&mut lan, &answer_path, json!({"values": {"tenant_full_name": {"type": "text", "value": "Trần Minh"}}}), "a-1").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("field_not_requested")));
    let (status, body) = command(&mut lan, &answer_path, phone("12345"), "a-2").await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("validation_failed")));
    assert_eq!(body["error"]["details"]["issues"][0]["field_id"], "tenant_phone");
    let (status, again) = command(&mut lan, &answer_path, phone("12345"), "a-2").await;
    assert_eq!((status, &again), (422, &body), "a refusal is recorded under its key");
    let (status, body) = command(&mut minh, &answer_path, phone("0987654321"), "a-3").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("case_not_found")));
    let (status, _) = command(&mut lan, &answer_path, json!({"values": {}, "x": 1}), "a-4").await;
    assert_eq!(status, 422);

    // The answer: information_provided, once per key.
    let (status, answered) = command(&mut lan, &answer_path, phone("0987654321"), "a-5").await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["status"], "information_provided");
    assert!(answered.get("requested_fields").is_none(), "nothing is asked any more");
    let (status, replay) = command(&mut lan, &answer_path, phone("0987654321"), "a-5").await;
    assert_eq!((status, &replay), (200, &answered));
    let (_, agency_view) = get(&mut staff, &format!("/v1/agency/cases/{case}")).await;
    assert_eq!(agency_view["values"]["tenant_phone"]["value"], "0987654321");
    assert_eq!(agency_view["values"]["tenant_full_name"]["value"], "Trần Văn Minh", "the other values stay");
    assert_eq!(latest_on_feed(&mut lan, &case).await["status"], "information_provided");

    // Done, and the resident sees the whole timeline with its messages.
    let (status, _) = set_status(&mut staff, &case, json!({"status": "done", "message": "Đã đăng ký tạm trú."}), "done-1").await;
    assert_eq!(status, 200);
    let seen = latest_on_feed(&mut lan, &case).await;
    assert_eq!(seen["status"], "done");
    assert_eq!(statuses(&seen), vec!["received", "needs_information", "information_provided", "done"]);
    assert_eq!(seen["timeline"][3]["message"], "Đã đăng ký tạm trú.");
    let at: Vec<i64> = seen["timeline"].as_array().unwrap().iter().map(|e| e["at_ms"].as_i64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "the timeline is in time order: {at:?}");
    let (status, body) = command(&mut lan, &answer_path, phone("0911111111"), "a-6").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("invalid_transition")));
    server.shutdown().await;
});

on_both_backends!(anonymous_reports_hide_the_sender_from_the_agency, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut hotline = login(&base, "hotline").await;

    let anonymous = submit(&mut lan, &report("anon-1", true), "anon-1").await.case_id;
    let named = submit(&mut lan, &report("named-1", false), "named-1").await.case_id;

    let (status, view) = get(&mut hotline, &format!("/v1/agency/cases/{anonymous}")).await;
    assert_eq!(status, 200);
    assert_eq!(view["anonymous"], true);
    assert!(view["resident"].is_null());
    assert!(view["values"].get("reporter_name").is_none() && view["values"].get("reporter_phone").is_none());
    assert_eq!(view["values"]["category"]["value"], json!(["flooding"]));
    let text = view.to_string();
    for secret in ["Nguyễn Thị Lan", "0903123456", "079165012345", "account"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let (_, view) = get(&mut hotline, &format!("/v1/agency/cases/{named}")).await;
    assert_eq!(view["resident"]["display_name"], "Nguyễn Thị Lan");
    assert_eq!(view["values"]["reporter_phone"]["value"], "0903123456");

    // The resident still follows the anonymous report.
    let (status, _) = set_status(&mut hotline, &anonymous, json!({"status": "processing", "message": "Đã chuyển đội chống ngập."}), "h-1").await;
    assert_eq!(status, 200);
    let seen = latest_on_feed(&mut lan, &anonymous).await;
    assert_eq!((seen["status"].as_str(), seen["draft_id"].as_str()), (Some("processing"), Some("anon-1")));

    // Only reports may be anonymous.
    let mut body = tam_tru("tt-anon");
    body["anonymous"] = json!(true);
    let (status, answer) = command(&mut lan, "/v1/cases", body, "tt-anon").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("anonymous_not_allowed")));
    server.shutdown().await;
});
