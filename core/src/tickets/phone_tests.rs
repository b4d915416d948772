//! The rider's side against a real store, the software keystore and the one outbox (no server:
//! its answers and feed changes are built here with a real operator key).

use serde_json::json;

use super::*;
use crate::crypto::jws::b64url;
use crate::crypto::{hex, Ed25519Signer, P256Signer, PublicKey};
use crate::platform::Platform;
use crate::sync::wire::{encode_cursor, Change, FeedPage};
use crate::sync::{apply_page, ACCOUNT_FEED};
use crate::tickets::commands::{PurchaseRequest, PURCHASE_KIND};
use crate::tickets::store::PurchaseState;
use crate::tickets::wire::{ticket_id, verify_code, Ticket};
use crate::{Core, CoreConfig};

struct Phone {
    _dir: tempfile::TempDir,
    core: Core,
    operator: Ed25519Signer,
}

fn phone() -> Phone {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::software(&dir.path().join("keys")).unwrap();
    // Nothing listens there: the phone is offline for the server.
    let core = Core::open(CoreConfig::new(dir.path().join("data"), "http://127.0.0.1:9"), platform).unwrap();
    Phone { _dir: dir, core, operator: Ed25519Signer::from_seed(&[5; 32], b"1".to_vec()).unwrap() }
}

impl Phone {
    fn device_key(&self) -> Vec<u8> {
        this_device_key(self.core.session().keystore.as_ref()).unwrap()
    }

    fn operator_keys(&self) -> Vec<(Vec<u8>, PublicKey)> {
        vec![(b"1".to_vec(), self.operator.public_key())]
    }

    /// A ticket for this phone (or another device key), valid from `from` for `secs`.
    fn issue(&self, product: Product, from: u64, secs: u64, device_key: Vec<u8>) -> (String, Vec<u8>) {
        let single = product == Product::SingleJourney;
        let ticket = Ticket {
            product,
            concession: None,
            origin: single.then_some(1),
            destination: single.then_some(5),
            fare_vnd: 7_000,
            valid_from: from / 60 * 60,
            valid_until: from / 60 * 60 + secs,
            device_key,
        };
        let statement = ticket.sign(&self.operator).unwrap();
        (hex(&ticket_id(&statement)), statement)
    }

    fn apply(&self, seq: u64, kind: &str, key: &str, data: serde_json::Value) {
        let page = FeedPage {
            feed: ACCOUNT_FEED.into(),
            changes: vec![Change { seq, kind: kind.into(), key: key.into(), data }],
            cursor: encode_cursor(seq),
            has_more: false,
        };
        apply_page(self.core.store(), &page, "account:test", false).unwrap();
    }

    fn deliver(&self, seq: u64, id: &str, statement: &[u8]) {
        self.apply(seq, "ticket.issued", id, issued_json(id, statement));
    }
}

fn issued_json(id: &str, statement: &[u8]) -> serde_json::Value {
    json!({"ticket_id": id, "ticket": b64url(statement), "product": 2, "fare_vnd": 40000, "valid_from": 0,
           "valid_until": 0, "key_id": "1", "issued_at_ms": 0, "revoked": false})
}

fn now_secs() -> u64 {
    (crate::store::now_millis() / 1000) as u64
}

#[test]
fn buying_offline_records_the_purchase_and_queues_one_command_bound_to_this_device() {
    let p = phone();
    let tickets = p.core.tickets();
    let id = tickets.buy(Product::SingleJourney, Some(1), Some(14)).unwrap();
    let purchases = tickets.purchases().unwrap();
    assert_eq!(purchases.len(), 1);
    assert_eq!(purchases[0].id, id);
    assert_eq!(purchases[0].state, PurchaseState::Waiting);
    let items = tickets.outbox(&id).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, PURCHASE_KIND);
    assert_eq!(items[0].state, crate::outbox::OutboxState::Waiting);
    let payload: String = p
        .core
        .store()
        .read("test", |c| c.query_row("SELECT payload FROM outbox WHERE subject = ?1", [&id], |r| r.get(0)))
        .unwrap();
    let request: PurchaseRequest = serde_json::from_str(&payload).unwrap();
    assert_eq!(
        request,
        PurchaseRequest { product: 1, origin: Some(1), destination: Some(14), device_key: b64url(&p.device_key()) }
    );
    assert!(!payload.contains("concession"), "the concession is the server's to decide");
}

#[test]
fn orders_that_cannot_be_priced_are_refused_before_anything_is_queued() {
    let p = phone();
    let tickets = p.core.tickets();
    let cases = [
        (Product::SingleJourney, None, None),
        (Product::SingleJourney, Some(3), Some(3)),
        (Product::SingleJourney, Some(1), Some(15)),
        (Product::DayPass, Some(1), Some(2)),
    ];
    for (product, origin, destination) in cases {
        let err = tickets.buy(product, origin, destination).unwrap_err();
        assert!(matches!(err, Error::Ticket { problem: TicketProblem::InvalidOrder(_) }), "{err:?}");
        let (vi, en) = err.user_message();
        assert!(!vi.is_empty() && !en.is_empty());
    }
    assert!(tickets.purchases().unwrap().is_empty());
    assert!(crate::outbox::items(p.core.store(), None).unwrap().is_empty());
}

#[test]
fn the_purchase_answer_keeps_the_ticket_and_the_feed_bringing_it_again_changes_nothing() {
    let p = phone();
    let tickets = p.core.tickets();
    let purchase = tickets.buy(Product::DayPass, None, None).unwrap();
    let (id, statement) = p.issue(Product::DayPass, now_secs(), 86_400, p.device_key());
    let route = crate::tickets::commands::route(PURCHASE_KIND).unwrap();
    p.core.store().write("test", |tx| (route.on_sent)(tx, &purchase, &issued_json(&id, &statement))).unwrap();
    assert_eq!(tickets.purchases().unwrap()[0].state, PurchaseState::Issued);
    assert_eq!(tickets.purchases().unwrap()[0].ticket_id.as_deref(), Some(id.as_str()));
    let listed = tickets.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].product, Product::DayPass);
    assert_eq!(listed[0].status, TicketStatus::Active);
    p.deliver(1, &id, &statement);
    p.deliver(1, &id, &statement);
    assert_eq!(tickets.list().unwrap(), listed);
}

#[test]
fn a_refused_purchase_is_marked_refused() {
    let p = phone();
    let tickets = p.core.tickets();
    let purchase = tickets.buy(Product::MonthlyPass, None, None).unwrap();
    let route = crate::tickets::commands::route(PURCHASE_KIND).unwrap();
    let rejection = crate::outbox::Rejection {
        code: "payment_declined".into(),
        message: "declined".into(),
        details: serde_json::Value::Null,
    };
    p.core.store().write("test", |tx| (route.on_rejected)(tx, &purchase, &rejection)).unwrap();
    assert_eq!(tickets.purchases().unwrap()[0].state, PurchaseState::Refused);
    assert!(tickets.list().unwrap().is_empty());
}

#[test]
fn a_statement_that_does_not_match_its_id_or_is_not_a_ticket_is_refused_with_the_whole_page() {
    let p = phone();
    let (id, statement) = p.issue(Product::DayPass, now_secs(), 86_400, p.device_key());
    let (other_id, _) = p.issue(Product::MonthlyPass, now_secs(), 86_400, p.device_key());
    for data in [
        issued_json(&other_id, &statement),
        issued_json(&id, &statement[..statement.len() - 1]),
        json!({"ticket_id": id, "ticket": "not base64!"}),
        json!({"ticket_id": id}),
    ] {
        let page = FeedPage {
            feed: ACCOUNT_FEED.into(),
            changes: vec![Change { seq: 1, kind: "ticket.issued".into(), key: id.clone(), data }],
            cursor: encode_cursor(1),
            has_more: false,
        };
        assert!(matches!(apply_page(p.core.store(), &page, "account:test", false), Err(Error::BadData(_))));
    }
    assert!(p.core.tickets().list().unwrap().is_empty());
}

#[test]
fn the_current_code_verifies_at_the_gate_and_rotates_with_the_slot() {
    let p = phone();
    let tickets = p.core.tickets();
    let (id, statement) = p.issue(Product::DayPass, now_secs() - 120, 86_400, p.device_key());
    p.deliver(1, &id, &statement);
    let base = (now_secs() as i64 / 20 * 20 + 40) * 1000; // a slot boundary, on the phone's clock
    let offset = tickets.clock_offset_ms().unwrap();
    let first = tickets.current_code_at(&id, base + 3_000 - offset).unwrap();
    assert_eq!(first.slot_start, (base / 1000) as u64);
    assert_eq!(first.slot_seconds, DEFAULT_SLOT_SECONDS);
    assert_eq!(first.seconds_remaining, 17);
    assert_eq!(first.ticket_id, id);
    let verified = verify_code(&first.bytes, &p.operator_keys()).unwrap();
    assert_eq!(verified.slot_start, first.slot_start);
    assert_eq!(hex(&verified.ticket.id), id);
    assert_eq!(first.text, crate::tickets::wire::code_text(&first.bytes));
    assert!(first.qr.version <= crate::tickets::qr::MAX_VERSION);
    // The same slot, a new signature; the next slot, a new slot start.
    let same = tickets.current_code_at(&id, base + 19_999 - offset).unwrap();
    assert_eq!(same.slot_start, first.slot_start);
    assert_eq!(same.seconds_remaining, 1);
    let next = tickets.current_code_at(&id, base + 20_000 - offset).unwrap();
    assert_eq!(next.slot_start, first.slot_start + 20);
    assert_eq!(next.seconds_remaining, 20);
    verify_code(&next.bytes, &p.operator_keys()).unwrap();
    // A configured slot length.
    let long = tickets.clone().with_slot_seconds(60).current_code_at(&id, base + 3_000 - offset).unwrap();
    assert_eq!(long.slot_seconds, 60);
    assert_eq!(long.slot_start % 60, 0);
    assert_eq!(tickets.clone().with_slot_seconds(1).slot_seconds(), 5);
}

#[test]
fn the_code_follows_the_servers_clock_kept_across_restarts() {
    let p = phone();
    let (id, statement) = p.issue(Product::DayPass, now_secs() - 7_200, 86_400, p.device_key());
    p.deliver(1, &id, &statement);
    // The phone's clock is an hour behind the server's.
    crate::tickets::store::set_clock_offset_ms(p.core.store(), 3_600_000).unwrap();
    let tickets = p.core.tickets();
    assert_eq!(tickets.clock_offset_ms().unwrap(), 3_600_000);
    let phone_now = crate::store::now_millis();
    let code = tickets.current_code_at(&id, phone_now).unwrap();
    let server_slot = ((phone_now + 3_600_000) / 1000 / 20 * 20) as u64;
    assert_eq!(code.slot_start, server_slot);
    // Learned from a response: used, and kept for later offline use.
    p.core.session().client.set_clock_offset_ms(-5_000);
    assert_eq!(tickets.clock_offset_ms().unwrap(), -5_000);
    assert_eq!(crate::tickets::store::clock_offset_ms(p.core.store()).unwrap(), Some(-5_000));
}

#[test]
fn tickets_survive_a_restart_and_are_shown_offline() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let platform = Platform::software(&dir.path().join("keys")).unwrap();
        Core::open(CoreConfig::new(dir.path().join("data"), "http://127.0.0.1:9"), platform).unwrap()
    };
    let operator = Ed25519Signer::from_seed(&[5; 32], b"1".to_vec()).unwrap();
    let core = open();
    let device = this_device_key(core.session().keystore.as_ref()).unwrap();
    let from = now_secs() / 60 * 60 - 60;
    let ticket = Ticket {
        product: Product::ThreeDayPass,
        concession: Some(Concession::Student),
        origin: None,
        destination: None,
        fare_vnd: 45_000,
        valid_from: from,
        valid_until: from + 3 * 86_400,
        device_key: device,
    };
    let statement = ticket.sign(&operator).unwrap();
    let id = hex(&ticket_id(&statement));
    let page = FeedPage {
        feed: ACCOUNT_FEED.into(),
        changes: vec![Change { seq: 7, kind: "ticket.issued".into(), key: id.clone(), data: issued_json(&id, &statement) }],
        cursor: encode_cursor(7),
        has_more: false,
    };
    apply_page(core.store(), &page, "account:test", false).unwrap();
    drop(core);
    let core = open();
    let listed = core.tickets().list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].concession, Some(Concession::Student));
    assert_eq!(listed[0].fare_vnd, 45_000);
    let code = core.tickets().current_code(&id).unwrap();
    verify_code(&code.bytes, &vec![(b"1".to_vec(), operator.public_key())]).unwrap();
}

#[test]
fn revoked_expired_and_other_device_tickets_are_listed_but_not_shown() {
    let p = phone();
    let tickets = p.core.tickets();
    let now = now_secs();
    let (revoked, s1) = p.issue(Product::DayPass, now - 60, 86_400, p.device_key());
    let (expired, s2) = p.issue(Product::SingleJourney, now - 90_000, 86_400, p.device_key());
    let other = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    let other_key = compress_device_key(&other.public_key().bytes).unwrap();
    let (elsewhere, s3) = p.issue(Product::MonthlyPass, now - 60, 30 * 86_400, other_key);
    let (later, s4) = p.issue(Product::DayPass, now + 3_600, 86_400, p.device_key());
    p.deliver(1, &revoked, &s1);
    p.deliver(2, &expired, &s2);
    p.deliver(3, &elsewhere, &s3);
    p.deliver(4, &later, &s4);
    p.apply(5, "ticket.revoked", &revoked, json!({"ticket_id": revoked, "reason": "refunded", "revoked_at_ms": 1}));
    // Replays: the revocation again, and the issue again, never un-revoke.
    p.apply(5, "ticket.revoked", &revoked, json!({"ticket_id": revoked, "reason": "refunded", "revoked_at_ms": 1}));
    p.deliver(1, &revoked, &s1);
    // A revocation of a ticket this phone never had changes nothing.
    p.apply(6, "ticket.revoked", "00", json!({"ticket_id": "00112233445566778899aabbccddeeff"}));
    let status = |id: &str| tickets.get(id).unwrap().status;
    assert_eq!(status(&revoked), TicketStatus::Revoked);
    assert_eq!(tickets.get(&revoked).unwrap().revoked_reason.as_deref(), Some("refunded"));
    assert_eq!(status(&expired), TicketStatus::Expired);
    assert_eq!(status(&elsewhere), TicketStatus::OtherDevice);
    assert_eq!(status(&later), TicketStatus::NotYetValid);
    assert_eq!(tickets.list().unwrap().len(), 4);
    let shown = |id: &str| match tickets.current_code(id) {
        Err(Error::Ticket { problem }) => problem,
        other => panic!("{other:?}"),
    };
    assert_eq!(shown(&revoked), TicketProblem::Revoked);
    assert_eq!(shown(&expired), TicketProblem::Expired);
    assert_eq!(shown(&elsewhere), TicketProblem::OtherDevice);
    assert_eq!(shown(&later), TicketProblem::NotYetValid);
    assert!(matches!(tickets.current_code("ffff"), Err(Error::NotFound { .. })));
}
