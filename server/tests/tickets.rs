//! Tickets on both databases: purchase (exactly once per key, whatever the network does),
//! concessions from verified identity attributes only, the rider's own tickets, and the
//! operator's side: keys, the signed revocation list, taps and clone detection.

mod common;

use common::identity::{error_code, login, Session};
use common::Backend;
use congdan_core::crypto::hex;
use congdan_core::crypto::jws::{b64url, b64url_decode};
use congdan_core::tickets::gate::keys::OperatorKeys;
use congdan_core::tickets::gate::revocation::RevocationList;
use congdan_core::tickets::wire::{compress_device_key, verify_ticket, Concession, Product};
use congdan_server::cases::idempotency;
use congdan_server::tickets::payment::DemoPaymentProvider;
use serde_json::{json, Value};

/// The session's own device key, as a purchase names it (compressed P-256, base64url).
fn device_key(s: &Session) -> String {
    let x = b64url_decode(s.device.jwk.x.as_deref().unwrap()).unwrap();
    let y = b64url_decode(s.device.jwk.y.as_deref().unwrap()).unwrap();
    b64url(&compress_device_key(&[&[4u8][..], &x, &y].concat()).unwrap())
}

fn day_pass(s: &Session) -> Value {
    json!({"product": 2, "device_key": device_key(s)})
}

async fn buy(s: &mut Session, body: &Value, key: &str) -> (u16, String) {
    let r = s.command("/v1/tickets/purchases", body, key).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn buy_day(s: &mut Session, key: &str) -> (u16, String) {
    let body = day_pass(s);
    buy(s, &body, key).await
}

async fn account_id(s: &mut Session) -> String {
    let me: Value = s.request("GET", "/v1/me", None).await.json().await.unwrap();
    me["account_id"].as_str().unwrap().to_string()
}

async fn changes(s: &mut Session, kind: &str) -> Vec<Value> {
    let r = s.request("POST", "/v1/sync/pull", Some(&json!({"feeds": [{"feed": "account"}]}))).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    page["feeds"][0]["changes"].as_array().unwrap().iter().filter(|c| c["kind"] == kind).cloned().collect()
}

async fn operator_keys(operator: &mut Session) -> OperatorKeys {
    let r = operator.request("GET", "/v1/operator/keys", None).await;
    assert_eq!(r.status(), 200);
    OperatorKeys::from_json(&r.bytes().await.unwrap()).unwrap()
}

fn now_secs() -> u64 {
    common::identity::now_secs() as u64
}

on_both_backends!(a_purchase_issues_a_ticket_signed_by_the_operator, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut operator = login(&base, "operator").await;

    let (status, text) = buy_day(&mut lan, "buy-day").await;
    assert_eq!(status, 201, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["fare_vnd"], 40_000);
    assert!(answer.get("concession").is_none(), "full fare: {answer}");
    let signed = b64url_decode(answer["ticket"].as_str().unwrap()).unwrap();

    // The gate's own key list verifies it; the id is the hash of the signed bytes.
    let keys = operator_keys(&mut operator).await;
    let verified = verify_ticket(&signed, &keys.at(now_secs())).unwrap();
    assert_eq!(hex(&verified.id), answer["ticket_id"].as_str().unwrap());
    assert_eq!(verified.key_id, answer["key_id"].as_str().unwrap().as_bytes());
    assert!((1..=2).contains(&verified.key_id.len()), "short key id for the QR");
    assert_eq!(verified.ticket.product, Product::DayPass);
    assert_eq!(verified.ticket.concession, None);
    assert_eq!(verified.ticket.fare_vnd, 40_000);
    assert_eq!(b64url(&verified.ticket.device_key), device_key(&lan));
    assert_eq!(verified.ticket.valid_until - verified.ticket.valid_from, 24 * 3600);
    assert!(verified.ticket.valid_from <= now_secs() && verified.ticket.valid_from.is_multiple_of(60));

    // A single journey is priced by distance: Bến Thành to Suối Tiên is the dearest.
    let single = json!({"product": "single", "origin": 1, "destination": 14, "device_key": device_key(&lan)});
    let (status, text) = buy(&mut lan, &single, "buy-single").await;
    assert_eq!(status, 201, "{text}");
    let single: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((single["fare_vnd"].as_u64(), single["origin"].as_u64(), single["destination"].as_u64()), (Some(20_000), Some(1), Some(14)));

    // Both reach the rider's feed and list.
    let issued = changes(&mut lan, "ticket.issued").await;
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[0]["key"], answer["ticket_id"]);
    assert_eq!(issued[0]["data"]["ticket"], answer["ticket"]);
    let list: Value = lan.request("GET", "/v1/tickets", None).await.json().await.unwrap();
    assert_eq!(list["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(list["tickets"][0]["ticket_id"], answer["ticket_id"]);

    // Bad orders are refused before anything is charged.
    for (body, code) in [
        (json!({"product": 1, "device_key": device_key(&lan)}), "invalid_purchase"),
        (json!({"product": 1, "origin": 3, "destination": 3, "device_key": device_key(&lan)}), "invalid_purchase"),
        (json!({"product": 7, "device_key": device_key(&lan)}), "invalid_purchase"),
        (json!({"product": 2, "device_key": "not-a-key"}), "bad_device_key"),
        (json!({"product": 2}), "invalid_body"),
    ] {
        let r = lan.command("/v1/tickets/purchases", &body, "bad-order").await;
        assert_eq!(r.status(), 422, "{body}");
        assert_eq!(error_code(r).await, code, "{body}");
    }
    let account = account_id(&mut lan).await;
    let charges = DemoPaymentProvider::new(server.state.db.clone()).charges(&account).await.unwrap();
    assert_eq!(charges.iter().map(|c| c.1).collect::<Vec<_>>(), [40_000, 20_000]);
    server.shutdown().await;
});

on_both_backends!(a_retried_purchase_charges_and_issues_once, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let account = account_id(&mut lan).await;
    let body = day_pass(&lan);

    let (status, first) = buy(&mut lan, &body, "key-1").await;
    assert_eq!(status, 201, "{first}");
    // A retry after a lost answer: the same answer, byte for byte.
    assert_eq!(buy(&mut lan, &body, "key-1").await, (201, first.clone()));
    // The same key with another body.
    let monthly = json!({"product": 4, "device_key": device_key(&lan)});
    let r = lan.command("/v1/tickets/purchases", &monthly, "key-1").await;
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "idempotency_key_reused");
    // A key whose first request is still being worked on.
    let fingerprint = idempotency::fingerprint(&serde_json::to_vec(&monthly).unwrap());
    assert_eq!(idempotency::claim(&server.state.db, &account, "key-busy", fingerprint).await.unwrap(), idempotency::Claim::Fresh);
    let r = lan.command("/v1/tickets/purchases", &monthly, "key-busy").await;
    assert_eq!(r.status(), 409);
    assert_eq!(error_code(r).await, "request_in_progress");

    // The phone sends, the connection dies before the answer arrives (the response is never
    // read), and the outbox sends the same command again.
    let url = format!("{base}/v1/tickets/purchases");
    let token = lan.tokens.access_token.clone();
    let proof = lan.device.proof("POST", &url, Some(&token), lan.nonce.as_deref());
    let payload = serde_json::to_vec(&monthly).unwrap();
    let host = base.trim_start_matches("http://");
    let request = format!(
        "POST /v1/tickets/purchases HTTP/1.1\r\nHost: {host}\r\nAuthorization: DPoP {token}\r\nDPoP: {proof}\r\n\
         Idempotency-Key: \"key-dropped\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    {
        use tokio::io::AsyncWriteExt;
        let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
        socket.write_all(request.as_bytes()).await.unwrap();
        socket.write_all(&payload).await.unwrap();
        socket.flush().await.unwrap();
        // Dropped here: the answer is never read.
    }
    let mut retried = None;
    for _ in 0..100 {
        let (status, text) = buy(&mut lan, &monthly, "key-dropped").await;
        if status != 409 {
            retried = Some((status, text));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, text) = retried.expect("the retry is answered");
    assert_eq!(status, 201, "{text}");
    assert_eq!(buy(&mut lan, &monthly, "key-dropped").await, (201, text.clone()));

    // One charge per key, one ticket per charge.
    let charges = DemoPaymentProvider::new(server.state.db.clone()).charges(&account).await.unwrap();
    let keys: Vec<&str> = charges.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(keys, ["key-1", "key-dropped"], "{charges:?}");
    let list: Value = lan.request("GET", "/v1/tickets", None).await.json().await.unwrap();
    let ids: Vec<&str> = list["tickets"].as_array().unwrap().iter().map(|t| t["ticket_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(changes(&mut lan, "ticket.issued").await.len(), 2);
    server.shutdown().await;
});

on_both_backends!(concessions_come_from_verified_identity_attributes, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    // (resident, monthly pass price, concession): An is a verified student, Ba was born in
    // 1950, Hoa has a verified disability, Lan has no verified attributes.
    for (who, monthly, concession) in [
        ("an", 150_000, Some(Concession::Student)),
        ("ba", 0, Some(Concession::Elderly)),
        ("hoa", 0, Some(Concession::Disability)),
        ("lan", 300_000, None),
    ] {
        let mut rider = login(&base, who).await;
        let products: Value = rider.request("GET", "/v1/tickets/products", None).await.json().await.unwrap();
        assert_eq!(products["concession"].as_str(), concession.map(|c| c.name()), "{who}");
        assert_eq!(products["products"][3]["price_vnd"], monthly, "{who}");
        assert_eq!(products["fares"].as_array().unwrap().len(), 91);
        assert_eq!(products["stations"][0]["name_vi"], "Bến Thành");

        let body = json!({"product": 4, "device_key": device_key(&rider)});
        let (status, text) = buy(&mut rider, &body, "monthly").await;
        assert_eq!(status, 201, "{who}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["fare_vnd"], monthly, "{who}");
        let mut operator = login(&base, "operator").await;
        let keys = operator_keys(&mut operator).await;
        let signed = b64url_decode(answer["ticket"].as_str().unwrap()).unwrap();
        let ticket = verify_ticket(&signed, &keys.at(now_secs())).unwrap().ticket;
        assert_eq!(ticket.concession, concession, "{who}: the concession is signed into the ticket");
        // A free ticket is not charged at all.
        let account = account_id(&mut rider).await;
        let charges = DemoPaymentProvider::new(server.state.db.clone()).charges(&account).await.unwrap();
        assert_eq!(charges.len(), usize::from(monthly > 0), "{who}");
    }
    server.shutdown().await;
});

on_both_backends!(self_declared_concessions_and_foreign_device_keys_are_refused, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let minh = login(&base, "minh").await;

    let mut claimed = day_pass(&lan);
    claimed["concession"] = json!(2);
    let r = lan.command("/v1/tickets/purchases", &claimed, "self-declared").await;
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "concession_not_accepted");

    // Minh's phone key is registered, but to Minh: Lan cannot bind a ticket to it.
    let foreign = json!({"product": 2, "device_key": device_key(&minh)});
    let (status, text) = buy(&mut lan, &foreign, "foreign").await;
    assert_eq!(status, 422, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["code"], "device_key_not_registered");
    // The refusal is the key's recorded answer.
    assert_eq!(buy(&mut lan, &foreign, "foreign").await, (422, text));

    let account = account_id(&mut lan).await;
    assert!(DemoPaymentProvider::new(server.state.db.clone()).charges(&account).await.unwrap().is_empty());
    let list: Value = lan.request("GET", "/v1/tickets", None).await.json().await.unwrap();
    assert!(list["tickets"].as_array().unwrap().is_empty());
    server.shutdown().await;
});

on_both_backends!(riders_list_only_their_own_tickets, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut minh = login(&base, "minh").await;
    for key in ["a", "b", "c"] {
        assert_eq!(buy_day(&mut lan, key).await.0, 201);
    }
    let (_, minhs) = buy_day(&mut minh, "a").await;
    let minhs: Value = serde_json::from_str(&minhs).unwrap();

    // Pages of two, then the rest.
    let page: Value = lan.request("GET", "/v1/tickets?limit=2", None).await.json().await.unwrap();
    assert_eq!(page["tickets"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let rest: Value = lan.request("GET", &format!("/v1/tickets?limit=2&cursor={cursor}"), None).await.json().await.unwrap();
    assert_eq!(rest["tickets"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let all = [page["tickets"].as_array().unwrap().clone(), rest["tickets"].as_array().unwrap().clone()].concat();
    assert!(all.iter().all(|t| t["ticket_id"] != minhs["ticket_id"]));

    let theirs: Value = minh.request("GET", "/v1/tickets", None).await.json().await.unwrap();
    assert_eq!(theirs["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["tickets"][0]["ticket_id"], minhs["ticket_id"]);
    assert_eq!(changes(&mut minh, "ticket.issued").await.len(), 1);

    // A day's purchases are capped; the refused command is not recorded (it may go through later).
    for i in 3..congdan_server::tickets::purchase::MAX_TICKETS_PER_DAY {
        assert_eq!(buy_day(&mut lan, &format!("more-{i}")).await.0, 201);
    }
    let r = lan.command("/v1/tickets/purchases", &day_pass(&lan), "one-too-many").await;
    assert_eq!(r.status(), 429);
    assert_eq!(error_code(r).await, "too_many_purchases");
    let r = lan.command("/v1/tickets/purchases", &day_pass(&lan), "one-too-many").await;
    assert_eq!(r.status(), 429, "released, not replayed as a final answer");
    let r = lan.request("GET", "/v1/tickets?limit=0", None).await;
    assert_eq!(r.status(), 400);
    let r = lan.request("GET", "/v1/tickets?cursor=abc", None).await;
    assert_eq!(r.status(), 400);
    server.shutdown().await;
});

on_both_backends!(operator_endpoints_need_the_operator_role, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut operator = login(&base, "operator").await;
    let taps = json!({"taps": [{"ticket_id": "00112233445566778899aabbccddeeff", "station": 1, "gate": "G1",
        "direction": "entry", "at": now_secs(), "decision": "accept"}]});
    for (method, path) in [("GET", "/v1/operator/keys"), ("GET", "/v1/operator/revocations")] {
        let r = lan.request(method, path, None).await;
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(error_code(r).await, "forbidden");
        assert_eq!(operator.request(method, path, None).await.status(), 200, "{path}");
    }
    let r = lan.command("/v1/operator/taps", &taps, "t-1").await;
    assert_eq!(r.status(), 403);
    let r = operator.command("/v1/operator/taps", &taps, "t-1").await;
    assert_eq!(r.status(), 200);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!((receipt["stored"].as_u64(), receipt["duplicates"].as_u64()), (Some(1), Some(0)));
    // The same taps from another gate's upload: stored once.
    let r = operator.command("/v1/operator/taps", &taps, "t-2").await;
    let receipt: Value = r.json().await.unwrap();
    assert_eq!((receipt["stored"].as_u64(), receipt["duplicates"].as_u64()), (Some(0), Some(1)));

    // Keys: the current and the next, short ids, periods that overlap.
    let keys: Value = operator.request("GET", "/v1/operator/keys", None).await.json().await.unwrap();
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k["algorithm"] == "Ed25519" && (1..=2).contains(&k["key_id"].as_str().unwrap().len())));
    assert!(keys[0]["valid_from"].as_u64().unwrap() <= now_secs() && keys[1]["valid_from"].as_u64().unwrap() > now_secs());

    // A full batch from a gate with a long id fits the upload's body limit.
    let gate = "Cổng vào số 01 – Bến Thành (phía đường Lê Lợi)";
    let full: Vec<Value> = (0..400u64)
        .map(|i| json!({"ticket_id": format!("{i:032x}"), "station": 1, "gate": gate, "direction": "entry",
            "at": now_secs() - i, "decision": "fare_too_low"}))
        .collect();
    let full = json!({"taps": full});
    assert!(serde_json::to_vec(&full).unwrap().len() > 64 * 1024);
    let r = operator.command("/v1/operator/taps", &full, "full").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["stored"], 400);

    // Bad batches are refused with a reason.
    for bad in [
        json!({"taps": []}),
        json!({"taps": [{"ticket_id": "xyz", "station": 1, "gate": "G1", "direction": "entry", "at": now_secs(), "decision": "accept"}]}),
        json!({"taps": [{"ticket_id": "00112233445566778899aabbccddeeff", "station": 99, "gate": "G1", "direction": "entry", "at": now_secs(), "decision": "accept"}]}),
        json!({"taps": [{"ticket_id": "00112233445566778899aabbccddeeff", "station": 1, "gate": "G1", "direction": "sideways", "at": now_secs(), "decision": "accept"}]}),
    ] {
        let r = operator.command("/v1/operator/taps", &bad, "bad").await;
        assert_eq!(r.status(), 422, "{bad}");
        assert_eq!(error_code(r).await, "invalid_taps");
    }
    server.shutdown().await;
});

on_both_backends!(a_cloned_ticket_is_revoked_and_listed, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut minh = login(&base, "minh").await;
    let mut operator = login(&base, "operator").await;
    let keys = operator_keys(&mut operator).await;

    // The list starts empty and verifies with the operator's published keys.
    let list: Value = operator.request("GET", "/v1/operator/revocations", None).await.json().await.unwrap();
    let statement = b64url_decode(list["statement"].as_str().unwrap()).unwrap();
    let empty = RevocationList::verify(&statement, &keys.at(now_secs())).unwrap();
    assert_eq!((empty.sequence, empty.len()), (0, 0));

    let (_, lans) = buy_day(&mut lan, "day").await;
    let lans: Value = serde_json::from_str(&lans).unwrap();
    let lan_id = lans["ticket_id"].as_str().unwrap().to_string();
    let (_, minhs) = buy_day(&mut minh, "day").await;
    let minh_id = serde_json::from_str::<Value>(&minhs).unwrap()["ticket_id"].as_str().unwrap().to_string();

    let now = now_secs();
    let tap = |id: &str, station: u64, gate: &str, direction: &str, at: u64, decision: &str| {
        json!({"ticket_id": id, "station": station, "gate": gate, "direction": direction, "at": at, "decision": decision})
    };
    // Lan's ticket enters at Bến Thành, and a minute later at Suối Tiên, 19.7 km away: two
    // phones. Minh rides from Bến Thành to Rạch Chiếc in 20 minutes: one rider. A refused tap
    // never counts.
    let batch = json!({"taps": [
        tap(&lan_id, 1, "BT-1", "entry", now - 120, "accept"),
        tap(&minh_id, 1, "BT-2", "entry", now - 1500, "accept"),
        tap(&minh_id, 8, "RC-1", "exit", now - 300, "accept"),
        tap(&minh_id, 14, "ST-1", "entry", now - 1490, "pass_back"),
    ]});
    let r = operator.command("/v1/operator/taps", &batch, "gate-upload-1").await;
    assert_eq!(r.status(), 200);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["revoked"], json!([]));
    // The clone's tap arrives in a later upload (another station's gates sync later).
    let later = json!({"taps": [tap(&lan_id, 14, "ST-3", "entry", now - 60, "accept")]});
    let r = operator.command("/v1/operator/taps", &later, "gate-upload-2").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let receipt: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(receipt["revoked"], json!([lan_id]));
    // The upload retried: the same answer, nothing revoked twice.
    let r = operator.command("/v1/operator/taps", &later, "gate-upload-2").await;
    assert_eq!(r.text().await.unwrap(), text);

    // The next list carries it, signed, with a higher sequence.
    let list: Value = operator.request("GET", "/v1/operator/revocations", None).await.json().await.unwrap();
    let statement = b64url_decode(list["statement"].as_str().unwrap()).unwrap();
    let revoked = RevocationList::verify(&statement, &keys.at(now_secs())).unwrap();
    assert_eq!((revoked.sequence, revoked.len()), (1, 1));
    let id: [u8; 16] = congdan_core::crypto::from_hex(&lan_id).unwrap().try_into().unwrap();
    assert!(revoked.contains(&id));
    assert!(empty.check_newer(&revoked).is_ok() && revoked.check_newer(&empty).is_err());
    // A list altered in transit does not verify.
    let mut altered = statement.clone();
    let n = altered.len();
    altered[n - 70] ^= 1;
    assert!(RevocationList::verify(&altered, &keys.at(now_secs())).is_err());

    // Lan learns it on her feed and her list; Minh's ticket is untouched.
    let revocations = changes(&mut lan, "ticket.revoked").await;
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0]["data"]["ticket_id"], lan_id.as_str());
    assert_eq!(revocations[0]["data"]["reason"], "clone_detected");
    let mine: Value = lan.request("GET", "/v1/tickets", None).await.json().await.unwrap();
    assert_eq!(mine["tickets"][0]["revoked"], true);
    let theirs: Value = minh.request("GET", "/v1/tickets", None).await.json().await.unwrap();
    assert_eq!(theirs["tickets"][0]["revoked"], false);
    assert!(changes(&mut minh, "ticket.revoked").await.is_empty());
    server.shutdown().await;
});

on_both_backends!(racing_retries_of_one_purchase_make_one_ticket_and_one_charge, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut first = login(&base, "lan").await;
    let account = account_id(&mut first).await;
    let body = day_pass(&first);
    let device = std::sync::Arc::new(first.device);
    let token = first.tokens.access_token.clone();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        // The same phone (token and key) sending the same command, each with its own proof.
        let (base, device, token, body, mut nonce) = (base.clone(), device.clone(), token.clone(), body.clone(), first.nonce.clone());
        tasks.push(tokio::spawn(async move {
            let r = common::identity::send_with_proof(
                &base,
                &device,
                &mut nonce,
                "POST",
                "/v1/tickets/purchases",
                Some(&token),
                common::identity::Body::Command(&body, "race-key"),
            )
            .await;
            (r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    let mut answers = std::collections::BTreeSet::new();
    for t in tasks {
        let (status, text) = t.await.unwrap();
        match status {
            201 => {
                answers.insert(text);
            }
            409 => {}
            other => panic!("unexpected {other}: {text}"),
        }
    }
    assert_eq!(answers.len(), 1, "one answer whatever the race");
    let charges = DemoPaymentProvider::new(server.state.db.clone()).charges(&account).await.unwrap();
    assert_eq!(charges.len(), 1, "{charges:?}");
    server.shutdown().await;
});

on_both_backends!(the_demo_provider_charges_a_key_once_and_refunds, |b: Backend| async move {
    use congdan_server::tickets::payment::{ChargeRequest, PaymentError, PaymentProvider};
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let account = account_id(&mut lan).await;
    let provider = DemoPaymentProvider::new(server.state.db.clone());
    let request = |key: &'static str, amount_vnd: u64| ChargeRequest { account_id: &account, idempotency_key: key, amount_vnd };
    let first = provider.charge(request("k", 40_000)).await.unwrap();
    assert_eq!(provider.charge(request("k", 40_000)).await.unwrap(), first, "the same key is the same charge");
    assert!(matches!(provider.charge(request("k", 90_000)).await, Err(PaymentError::Declined(_))));
    let other = provider.charge(request("k2", 90_000)).await.unwrap();
    assert_ne!(other.charge_id, first.charge_id);
    provider.refund(&first.charge_id).await.unwrap();
    assert!(matches!(provider.refund("no-such-charge").await, Err(PaymentError::Declined(_))));
    let book = provider.charges(&account).await.unwrap();
    assert_eq!(book, [("k".to_string(), 40_000, true), ("k2".to_string(), 90_000, false)]);
    server.shutdown().await;
});

on_both_backends!(two_halves_of_a_clone_uploaded_at_once_revoke_it_once, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let operator = login(&base, "operator").await;
    let (_, bought) = buy_day(&mut lan, "day").await;
    let id = serde_json::from_str::<Value>(&bought).unwrap()["ticket_id"].as_str().unwrap().to_string();
    let now = now_secs();
    // Two stations' gates upload at the same moment, each holding one half of the evidence.
    let device = std::sync::Arc::new(operator.device);
    let token = operator.tokens.access_token.clone();
    let mut tasks = Vec::new();
    for (station, gate, key) in [(1u64, "BT-1", "upload-bt"), (14, "ST-1", "upload-st")] {
        let body = json!({"taps": [{"ticket_id": id, "station": station, "gate": gate, "direction": "entry", "at": now - 30, "decision": "accept"}]});
        let (base, device, token, mut nonce) = (base.clone(), device.clone(), token.clone(), operator.nonce.clone());
        tasks.push(tokio::spawn(async move {
            let r = common::identity::send_with_proof(
                &base,
                &device,
                &mut nonce,
                "POST",
                "/v1/operator/taps",
                Some(&token),
                common::identity::Body::Command(&body, key),
            )
            .await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["revoked"].as_array().unwrap().len()
        }));
    }
    let mut revoked = 0;
    for t in tasks {
        revoked += t.await.unwrap();
    }
    assert_eq!(revoked, 1, "whichever upload commits second sees the first one's tap");
    assert_eq!(changes(&mut lan, "ticket.revoked").await.len(), 1);
    server.shutdown().await;
});
