//! Gates of one station on loopback: taps shared over UDP (gate B refuses a code gate A just
//! accepted), a gate whose peers are unreachable keeps deciding, the tap log survives a restart
//! and restores pass-back, and a gate whose server is down keeps validating on what it holds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use congdan_core::crypto::{Ed25519Signer, P256Signer};
use congdan_core::platform::Platform;
use congdan_core::tickets::gate::peers::StationKey;
use congdan_core::tickets::gate::taplog;
use congdan_core::tickets::gate::{Decision, Direction, Gate, GateConfig, OperatorKey, OperatorKeys, RefusalReason, RevocationList};
use congdan_core::tickets::{compress_device_key, make_code, Product, Ticket};
use congdan_core::{Core, CoreConfig};

fn operator() -> Ed25519Signer {
    Ed25519Signer::from_seed(&[42; 32], b"1".to_vec()).unwrap()
}

fn operator_keys() -> OperatorKeys {
    OperatorKeys::new(vec![OperatorKey { key_id: "1".into(), public_key: operator().public_key().bytes, valid_from: 0, valid_until: None }])
        .unwrap()
}

fn now() -> u64 {
    congdan_core::tickets::gate::unix_now()
}

struct Rider {
    device: P256Signer,
    ticket: Vec<u8>,
}

fn rider() -> Rider {
    let device = P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap();
    let start = now() - now() % 60;
    let ticket = Ticket {
        product: Product::DayPass,
        concession: None,
        origin: None,
        destination: None,
        fare_vnd: 40_000,
        valid_from: start - 3600,
        valid_until: start + 23 * 3600,
        device_key: compress_device_key(&device.public_key().bytes).unwrap(),
    }
    .sign(&operator())
    .unwrap();
    Rider { device, ticket }
}

impl Rider {
    fn code(&self, slot_start: u64) -> Vec<u8> {
        make_code(&self.ticket, slot_start, &self.device).unwrap()
    }
}

/// A gate on its own core, with no server (the URL points at a closed port).
fn open_gate(dir: &std::path::Path, gate_id: &str, direction: Direction) -> Gate {
    let core = Core::open(CoreConfig::new(dir, "http://127.0.0.1:9"), Platform::software(dir).unwrap()).unwrap();
    let gate = Gate::open(core, GateConfig::new(6, gate_id, direction), now()).unwrap();
    if gate.validator().keys().is_empty() {
        gate.set_keys(operator_keys()).unwrap();
    }
    gate
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_code_accepted_at_gate_a_is_refused_at_gate_b_of_the_same_station() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open_gate(dir_a.path(), "S6-A", Direction::Entry);
    let b = open_gate(dir_b.path(), "S6-B", Direction::Entry);
    let key = StationKey::new(&[3; 32]);
    // Two free loopback ports, each gate listening on one and telling the other.
    let (addr_a, addr_b) = (free_udp_port(), free_udp_port());
    assert_eq!(a.join_station(addr_a, vec![addr_b], key.clone()).unwrap(), addr_a);
    assert_eq!(b.join_station(addr_b, vec![addr_a], key.clone()).unwrap(), addr_b);

    let rider = rider();
    let code = rider.code(now());
    assert!(a.tap(&code, now()).unwrap().is_accept());
    wait_until("gate B to hear gate A's tap", || b.tap_log_status().unwrap().logged >= 1);
    let at_b = b.tap(&code, now()).unwrap();
    assert_eq!(at_b.reason(), Some(RefusalReason::PassBack), "{at_b:?}");
    // Another rider still gets through gate B.
    assert!(b.tap(&rider_code(), now()).unwrap().is_accept());
    assert_eq!(a.peer_counters().1, 0);
}

fn free_udp_port() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn rider_code() -> Vec<u8> {
    rider().code(now())
}

#[test]
fn a_forged_peer_message_changes_nothing() {
    let dir_b = tempfile::tempdir().unwrap();
    let b = open_gate(dir_b.path(), "S6-B", Direction::Entry);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let addr_b = b.join_station(loopback, vec![], StationKey::new(&[3; 32])).unwrap();
    // A gate with the wrong station key (an outsider on the LAN) announces a tap.
    let dir_x = tempfile::tempdir().unwrap();
    let outsider = open_gate(dir_x.path(), "X", Direction::Entry);
    outsider.join_station(loopback, vec![addr_b], StationKey::new(&[4; 32])).unwrap();
    let rider = rider();
    let code = rider.code(now());
    assert!(outsider.tap(&code, now()).unwrap().is_accept());
    wait_until("the datagram to be sent", || outsider.peer_counters().0 >= 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(b.tap_log_status().unwrap().logged, 0);
    assert!(b.tap(&code, now()).unwrap().is_accept());
}

#[test]
fn a_gate_whose_peers_are_down_keeps_deciding() {
    let dir = tempfile::tempdir().unwrap();
    let a = open_gate(dir.path(), "S6-A", Direction::Entry);
    // Peers that do not exist: a closed port and an unroutable documentation address.
    let dead: Vec<SocketAddr> = vec!["127.0.0.1:9".parse().unwrap(), "192.0.2.1:47800".parse().unwrap()];
    a.join_station("127.0.0.1:0".parse().unwrap(), dead, StationKey::new(&[3; 32])).unwrap();
    let started = Instant::now();
    for _ in 0..5 {
        let rider = rider();
        assert!(a.tap(&rider.code(now()), now()).unwrap().is_accept());
    }
    assert!(started.elapsed() < Duration::from_secs(2), "peers must never hold up a decision");
}

#[test]
fn the_tap_log_survives_a_restart_and_restores_pass_back() {
    let dir = tempfile::tempdir().unwrap();
    let rider = rider();
    let code = rider.code(now());
    {
        let gate = open_gate(dir.path(), "S6-A", Direction::Entry);
        assert!(gate.tap(&code, now()).unwrap().is_accept());
        assert_eq!(gate.tap(b"garbage", now()).unwrap().reason(), Some(RefusalReason::Malformed));
        let status = gate.tap_log_status().unwrap();
        assert_eq!((status.logged, status.accepted, status.not_uploaded), (2, 1, 1), "a code without a ticket id is not uploaded");
    }
    let gate = open_gate(dir.path(), "S6-A", Direction::Entry);
    assert!(!gate.validator().keys().is_empty(), "the keys were kept");
    let again = rider.code(now());
    assert_eq!(gate.tap(&again, now()).unwrap().reason(), Some(RefusalReason::PassBack));
    // Thirty-one days on, what never goes to the server is pruned; taps waiting for it are kept.
    let later = now() + 31 * 86_400;
    assert_eq!(taplog::prune(gate.core().store(), later).unwrap(), 1, "the garbage code's row");
    assert_eq!(gate.tap_log_status().unwrap().not_uploaded, 2);
}

#[test]
fn a_gate_whose_server_is_down_keeps_validating_on_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let gate = open_gate(dir.path(), "S6-A", Direction::Entry);
    let revoked = rider();
    let id = congdan_core::tickets::ticket_id(&revoked.ticket);
    let list = RevocationList::from_ids(1, now(), vec![id]).sign(&operator()).unwrap();
    gate.set_revocations(&list, now()).unwrap();
    let report = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(gate.sync_with_server(now()));
    assert!(report.keys_error.is_some() && report.revocations_error.is_some(), "{report:?}");
    assert_eq!((report.keys, report.revocation_sequence, report.revoked), (1, 1, 1));
    assert!(gate.tap(&rider_code(), now()).unwrap().is_accept());
    assert_eq!(gate.tap(&revoked.code(now()), now()).unwrap().reason(), Some(RefusalReason::Revoked));
    match gate.tap(&rider().code(now() - 300), now()).unwrap() {
        Decision::Refuse(r) => assert_eq!(r.reason, RefusalReason::StaleCode),
        other => panic!("{other:?}"),
    }
}
