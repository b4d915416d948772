//! The gate against the real server on loopback (issue 5's story, gate side): a rider buys a
//! day pass; a gate logged in as `operator` pulls keys and the revocation list and accepts the
//! rider's code offline; a screenshot a minute later, the ticket on a second device, a changed
//! byte and a second entry are each refused with their own reason; the taps go up through the
//! outbox, the server catches the same ticket at two gates in one slot and revokes it, and the
//! next revocation list makes the gate refuse it as revoked. With the server gone the gate
//! keeps deciding on what it has.

use congdan_core::crypto::P256Signer;
use congdan_core::tickets::gate::{Decision, Direction, Gate, GateConfig, RefusalReason};
use congdan_core::tickets::{self, make_code, Product};
use congdan_server::ServerConfig;

mod phone;
use phone::{login, phone as device, quiet};

fn now() -> u64 {
    congdan_core::tickets::gate::unix_now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_accepts_offline_refuses_each_fraud_with_its_reason_and_learns_revocations() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::embedded(&tmp.path().join("server"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    // Three logins from one loopback address in a second: above the default per-address budget.
    config.identity.auth_rate_limit = congdan_server::config::RateLimit { burst: 1_000, refill_secs: 0.01 };
    let server = congdan_server::start(config).await.unwrap();
    let url = server.url();

    // The rider buys a day pass.
    let rider = device(&tmp.path().join("rider"), &url);
    login(&rider, "lan").await;
    rider.tickets().buy(Product::DayPass, None, None).unwrap();
    let drained = rider.send_outbox().await.unwrap();
    assert_eq!(drained.sent, 1, "{drained:?}");
    rider.sync(&quiet).await.unwrap();
    let ticket = rider.tickets().list().unwrap().into_iter().find(|t| t.product == Product::DayPass).expect("the day pass");

    // Two entry gates of Bến Thành, each its own core logged in as the operator.
    let open_gate = |name: &str| {
        let core = device(&tmp.path().join(name), &url);
        (core, name.to_string())
    };
    let (core_a, id_a) = open_gate("S1-A");
    login(&core_a, "operator").await;
    let gate_a = Gate::open(core_a, GateConfig::new(1, &id_a, Direction::Entry), now()).unwrap();
    let report = gate_a.sync_with_server(now()).await;
    assert!(report.keys >= 1 && report.keys_error.is_none() && report.revocations_error.is_none(), "{report:?}");

    // Accepted offline (nothing on the decision path touches the network).
    let code = rider.tickets().current_code(&ticket.id).unwrap();
    let decision = gate_a.tap_text(&code.text, now()).unwrap();
    let Decision::Accept(accepted) = &decision else { panic!("{decision:?}") };
    assert_eq!(congdan_core::crypto::hex(&accepted.ticket_id), ticket.id);

    // A screenshot of that code a minute later.
    let replay = gate_a.validator().validate_text(&code.text, now() + 60);
    assert_eq!(replay.reason(), Some(RefusalReason::StaleCode));
    // The same ticket on a second phone (its own device key).
    let second_phone = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    let ticket_bytes = tickets::parse_code(&code.bytes).unwrap().ticket_bytes;
    let copied = make_code(&ticket_bytes, code.slot_start, &second_phone).unwrap();
    assert_eq!(gate_a.tap(&copied, now()).unwrap().reason(), Some(RefusalReason::WrongDevice));
    // A changed byte: the validity's first varint byte (the ticket's fields end 133 bytes before
    // the code's end: 5 bytes of slot, 64 of proof, 64 of operator signature; before them the
    // 35-byte device key and the 5-byte valid-until field).
    let mut altered = code.bytes.clone();
    let at = altered.len() - 133 - 39;
    altered[at] ^= 0x01;
    let tampered = gate_a.tap(&altered, now()).unwrap();
    assert_eq!(tampered.reason(), Some(RefusalReason::Tampered), "{tampered:?}");
    // A second entry with a fresh code: pass-back.
    let fresh = rider.tickets().current_code(&ticket.id).unwrap();
    assert_eq!(gate_a.tap_text(&fresh.text, now()).unwrap().reason(), Some(RefusalReason::PassBack));

    // Gate B of the same station, not peered with A, lets the same ticket in within the slot:
    // two entries at two gates of one station in one slot. The taps reach the server.
    let (core_b, id_b) = open_gate("S1-B");
    login(&core_b, "operator").await;
    let gate_b = Gate::open(core_b, GateConfig::new(1, &id_b, Direction::Entry), now()).unwrap();
    gate_b.sync_with_server(now()).await;
    assert!(gate_b.tap_text(&fresh.text, now()).unwrap().is_accept());
    // Accept, wrong device, pass-back; the tampered code has no ticket id and stays local.
    let up_a = gate_a.sync_with_server(now()).await;
    assert!(up_a.taps_queued == 3 && up_a.upload.as_ref().is_some_and(|u| u.sent == 1), "{up_a:?}");
    let up_b = gate_b.sync_with_server(now()).await;
    assert!(up_b.upload.as_ref().is_some_and(|u| u.sent == 1), "{up_b:?}");
    assert_eq!(gate_b.tap_log_status().unwrap().not_uploaded, 0);

    // The server revoked it; the next pull tells the gates.
    let pulled = gate_a.sync_with_server(now()).await;
    assert!(pulled.revoked >= 1, "{pulled:?}");
    let later = rider.tickets().current_code(&ticket.id);
    let text = match later {
        Ok(c) => c.text,
        Err(_) => fresh.text.clone(), // the phone may already know it is revoked
    };
    let refused = gate_a.validator().validate_text(&text, now());
    assert_eq!(refused.reason(), Some(RefusalReason::Revoked), "{refused:?}");

    // Gate B learns it too; then the server goes away, and the gate keeps deciding on the keys
    // and list it holds (kept in its store).
    assert!(gate_b.sync_with_server(now()).await.revoked >= 1);
    server.shutdown().await;
    let down = gate_b.sync_with_server(now()).await;
    assert!(down.all_failed(), "{down:?}");
    assert_eq!(gate_b.validator().validate_text(&text, now()).reason(), Some(RefusalReason::Revoked));
    let taps = gate_b.tap_text("GARBAGE", now()).unwrap();
    assert_eq!(taps.reason(), Some(RefusalReason::Malformed));
}
