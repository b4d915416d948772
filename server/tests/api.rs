//! The server suite: every test runs against a real SQLite file and a real PostgreSQL database.

mod common;

use common::Backend;
use congdan_core::catalog::Procedure;
use congdan_core::sync::wire::{PullResponse, ErrorBody};
use congdan_server::catalog::{self, store};
use serde_json::{json, Value};

async fn pull(base: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("{base}/v1/sync/pull")).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn seqs(resp: &PullResponse) -> Vec<u64> {
    resp.feeds[0].changes.iter().map(|c| c.seq).collect()
}

on_both_backends!(health_names_the_backend, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let v: Value = reqwest::get(format!("{}/health", s.url())).await.unwrap().json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["database"], b.name);
    s.shutdown().await;
});

on_both_backends!(seeded_catalog_is_served, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let v: Value = reqwest::get(format!("{}/v1/catalog/procedures", s.url())).await.unwrap().json().await.unwrap();
    let procedures: Vec<Procedure> = serde_json::from_value(v["procedures"].clone()).unwrap();
    assert!(procedures.len() >= 8);
    let one: Procedure = reqwest::get(format!("{}/v1/catalog/procedures/CT-TAM-TRU", s.url()))
        .await.unwrap().json().await.unwrap();
    assert_eq!(one.code, "CT-TAM-TRU");
    let missing = reqwest::get(format!("{}/v1/catalog/procedures/NOPE", s.url())).await.unwrap();
    assert_eq!(missing.status(), 404);
    let e: ErrorBody = missing.json().await.unwrap();
    assert_eq!(e.error.code, "procedure_not_found");
    s.shutdown().await;
});

on_both_backends!(pull_pages_through_the_feed_exactly_once, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let total = catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap().len();
    let mut cursor = String::new();
    let mut seen = Vec::new();
    loop {
        let (status, v) = pull(&s.url(), json!({"feeds": [{"feed": "public", "cursor": cursor}], "limit": 3})).await;
        assert_eq!(status, 200, "{v}");
        let resp: PullResponse = serde_json::from_value(v).unwrap();
        let page = &resp.feeds[0];
        assert!(page.changes.len() <= 3);
        seen.extend(seqs(&resp));
        cursor = page.cursor.clone();
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, (1..=total as u64).collect::<Vec<_>>(), "gap-free, strictly increasing, once each");
    // At the end: nothing new, same cursor.
    let (_, v) = pull(&s.url(), json!({"feeds": [{"feed": "public", "cursor": cursor}]})).await;
    let resp: PullResponse = serde_json::from_value(v).unwrap();
    assert!(resp.feeds[0].changes.is_empty());
    assert_eq!(resp.feeds[0].cursor, cursor);
    assert!(!resp.feeds[0].has_more);

    // Republishing unchanged procedures writes nothing; one edit writes exactly one change.
    let mut procedures = catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap();
    let report = store::publish(&s.state.db, procedures.clone()).await.unwrap();
    assert_eq!((report.changed, report.unchanged), (0, total as u32));
    procedures[0].fee_vnd += 1000;
    store::publish(&s.state.db, procedures.clone()).await.unwrap();
    assert!(store::withdraw(&s.state.db, &procedures[1].code).await.unwrap());
    assert!(!store::withdraw(&s.state.db, &procedures[1].code).await.unwrap(), "withdrawing twice is a no-op");
    let (_, v) = pull(&s.url(), json!({"feeds": [{"feed": "public", "cursor": cursor}]})).await;
    let resp: PullResponse = serde_json::from_value(v).unwrap();
    let kinds: Vec<_> = resp.feeds[0].changes.iter().map(|c| (c.kind.as_str(), c.key.as_str())).collect();
    assert_eq!(kinds, vec![("procedure.upsert", procedures[0].code.as_str()), ("procedure.withdraw", procedures[1].code.as_str())]);
    let gone = reqwest::get(format!("{}/v1/catalog/procedures/{}", s.url(), procedures[1].code)).await.unwrap();
    assert_eq!(gone.status(), 404);
    s.shutdown().await;
});

on_both_backends!(bad_input_gets_typed_4xx_never_5xx, |b: Backend| async move {
    let s = common::start(&b.url).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/sync/pull", s.url());
    let send = |body: String, content_type: &'static str| {
        let c = client.clone();
        let u = url.clone();
        async move {
            let r = c.post(u).header("content-type", content_type).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            let e: ErrorBody = r.json().await.expect("every error is typed JSON");
            (status, e.error.code)
        }
    };
    let json_ct = "application/json";
    let cases: Vec<(String, &str, u16, &str)> = vec![
        ("{\"feeds\": [".into(), json_ct, 400, "malformed_json"),
        ("{\"feeds\": [{\"feed\": \"public\", \"extra\": 1}]}".into(), json_ct, 422, "invalid_body"),
        ("{\"feeds\": \"public\"}".into(), json_ct, 422, "invalid_body"),
        ("{\"feeds\": [{\"feed\": \"public\"}]}".into(), "text/plain", 415, "unsupported_media_type"),
        (format!("{{\"feeds\": [{{\"feed\": \"{}\"}}]}}", "x".repeat(70_000)), json_ct, 413, "body_too_large"),
        ("{\"feeds\": [{\"feed\": \"public\", \"cursor\": \"abc\"}]}".into(), json_ct, 400, "bad_cursor"),
        ("{\"feeds\": [{\"feed\": \"public\", \"cursor\": \"1.999999\"}]}".into(), json_ct, 409, "cursor_ahead"),
        ("{\"feeds\": [{\"feed\": \"someone-else\"}]}".into(), json_ct, 404, "unknown_feed"),
        ("{\"feeds\": [{\"feed\": \"public\"}], \"limit\": 0}".into(), json_ct, 400, "bad_limit"),
        ("{\"feeds\": [{\"feed\": \"public\"}], \"limit\": 100000}".into(), json_ct, 400, "bad_limit"),
        ("{\"feeds\": []}".into(), json_ct, 400, "bad_feeds"),
        ("{\"feeds\": [{\"feed\": \"public\"}, {\"feed\": \"public\"}]}".into(), json_ct, 400, "bad_feeds"),
    ];
    for (body, ct, status, code) in cases {
        let shown: String = body.chars().take(60).collect();
        assert_eq!(send(body, ct).await, (status, code.to_string()), "{shown}");
    }
    let r = client.get(format!("{}/no/such/thing", s.url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<ErrorBody>().await.unwrap().error.code, "not_found");
    let r = client.delete(format!("{}/health", s.url())).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.json::<ErrorBody>().await.unwrap().error.code, "method_not_allowed");
    s.shutdown().await;
});

on_both_backends!(two_instances_on_one_database_keep_the_feed_gap_free, |b: Backend| async move {
    // Two server instances (two pools) publish at the same time into one database.
    let first = common::start(&b.url).await;
    let second = common::start(&b.url).await;
    let base = catalog::parse_catalog(catalog::DEMO_CATALOG).unwrap();
    let head_before = base.len() as u64;
    let mut tasks = Vec::new();
    for (i, server) in [&first, &second].into_iter().enumerate() {
        let db = server.state.db.clone();
        let template = base[0].clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..25 {
                let mut p = template.clone();
                p.code = format!("T{i}-{n}");
                store::publish(&db, vec![p]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (_, v) = pull(&second.url(), json!({"feeds": [{"feed": "public", "cursor": congdan_core::sync::wire::encode_cursor(head_before)}], "limit": 500})).await;
    let resp: PullResponse = serde_json::from_value(v).unwrap();
    assert_eq!(seqs(&resp), (head_before + 1..=head_before + 50).collect::<Vec<_>>());
    first.shutdown().await;
    second.shutdown().await;
});

#[test]
fn openapi_documents_every_route_and_nothing_else() {
    let doc: Value = serde_json::from_str(congdan_server::openapi::DOCUMENT).unwrap();
    assert_eq!(doc["openapi"].as_str().unwrap().chars().next(), Some('3'));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    let mut routes: Vec<(String, String)> =
        congdan_server::app::ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    documented.sort();
    routes.sort();
    assert_eq!(documented, routes);
}
