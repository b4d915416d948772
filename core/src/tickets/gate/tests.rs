//! Every decision of the gate, each from a code built for it.

use super::*;
use crate::crypto::{Ed25519Signer, P256Signer, Signer};
use crate::tickets::base45;
use crate::tickets::wire::{self, compress_device_key, make_code, Concession, Product, Ticket};

/// 2026-11-24 06:00:00 UTC, a whole minute.
const NOW: u64 = 1_795_500_000 - 1_795_500_000 % 60;
const HOUR: u64 = 3600;

struct Rider {
    device: P256Signer,
}

impl Rider {
    fn new() -> Rider {
        Rider { device: P256Signer::from_pkcs8(&P256Signer::generate_pkcs8().unwrap(), None).unwrap() }
    }

    fn device_key(&self) -> Vec<u8> {
        compress_device_key(&self.device.public_key().bytes).unwrap()
    }
}

fn operator() -> Ed25519Signer {
    Ed25519Signer::from_seed(&[42; 32], b"1".to_vec()).unwrap()
}

fn operator_keys() -> OperatorKeys {
    OperatorKeys::new(vec![OperatorKey {
        key_id: "1".into(),
        public_key: operator().public_key().bytes,
        valid_from: 0,
        valid_until: None,
    }])
    .unwrap()
}

fn day_pass(rider: &Rider) -> Ticket {
    Ticket {
        product: Product::DayPass,
        concession: None,
        origin: None,
        destination: None,
        fare_vnd: 40_000,
        valid_from: NOW - HOUR,
        valid_until: NOW + 23 * HOUR,
        device_key: rider.device_key(),
    }
}

fn single(rider: &Rider, origin: u64, destination: u64, concession: Option<Concession>) -> Ticket {
    Ticket {
        product: Product::SingleJourney,
        concession,
        origin: Some(origin),
        destination: Some(destination),
        fare_vnd: crate::tickets::network::single_fare(origin, destination, concession).unwrap(),
        valid_from: NOW - HOUR,
        valid_until: NOW + 23 * HOUR,
        device_key: rider.device_key(),
    }
}

fn code_for(ticket: &Ticket, signer: &dyn Signer, device: &dyn Signer, slot_start: u64) -> Vec<u8> {
    make_code(&ticket.sign(signer).unwrap(), slot_start, device).unwrap()
}

fn gate(station: u64, direction: Direction) -> GateValidator {
    GateValidator::new(GateConfig::new(station, &format!("S{station}-{}", direction.as_str()), direction), operator_keys(), RevocationList::default())
}

fn reason(decision: &Decision) -> Option<RefusalReason> {
    decision.reason()
}

#[test]
fn a_day_pass_enters_and_exits_anywhere() {
    let rider = Rider::new();
    let code = code_for(&day_pass(&rider), &operator(), &rider.device, NOW - 5);
    let decision = gate(4, Direction::Entry).validate(&code, NOW);
    let Decision::Accept(accepted) = &decision else { panic!("{decision:?}") };
    assert_eq!(accepted.product, 2);
    assert_eq!(accepted.remaining_s, 23 * HOUR);
    assert_eq!(accepted.ticket_id, wire::ticket_id(&day_pass_bytes(&code)));
    assert_eq!(accepted.consumed_until, None);
    assert!(gate(11, Direction::Exit).validate(&code, NOW).is_accept());
    // The same code as QR text.
    assert!(gate(9, Direction::Entry).validate_text(&base45::encode(&code), NOW).is_accept());
}

fn day_pass_bytes(code: &[u8]) -> Vec<u8> {
    wire::parse_code(code).unwrap().ticket_bytes
}

#[test]
fn malformed_codes() {
    let g = gate(1, Direction::Entry);
    let rider = Rider::new();
    let code = code_for(&day_pass(&rider), &operator(), &rider.device, NOW);
    for bad in [vec![], vec![0x01], b"hello".to_vec(), code[..code.len() - 1].to_vec(), [code.clone(), vec![0]].concat()] {
        assert_eq!(reason(&g.validate(&bad, NOW)), Some(RefusalReason::Malformed), "{bad:?}");
    }
    let mut other_version = code.clone();
    other_version[0] = 0x02;
    assert_eq!(reason(&g.validate(&other_version, NOW)), Some(RefusalReason::Malformed));
    assert_eq!(reason(&g.validate_text("not base45 at all!", NOW)), Some(RefusalReason::Malformed));
    assert_eq!(reason(&g.validate_text("", NOW)), Some(RefusalReason::Malformed));
}

#[test]
fn unknown_operator_key() {
    let rider = Rider::new();
    let other = Ed25519Signer::from_seed(&[42; 32], b"9".to_vec()).unwrap();
    let code = code_for(&day_pass(&rider), &other, &rider.device, NOW);
    assert_eq!(reason(&gate(1, Direction::Entry).validate(&code, NOW)), Some(RefusalReason::UnknownKey));
    // A retired key is unknown after its period.
    let retired = GateValidator::new(
        GateConfig::new(1, "g", Direction::Entry),
        OperatorKeys::new(vec![OperatorKey { valid_until: Some(NOW - 60), ..operator_keys().keys()[0].clone() }]).unwrap(),
        RevocationList::default(),
    );
    let code = code_for(&day_pass(&rider), &operator(), &rider.device, NOW);
    assert_eq!(reason(&retired.validate(&code, NOW)), Some(RefusalReason::UnknownKey));
}

#[test]
fn forged_ticket_signed_by_someone_else_under_the_operators_key_id() {
    let forger = Rider::new();
    let fake_operator = Ed25519Signer::from_seed(&[7; 32], b"1".to_vec()).unwrap();
    let code = code_for(&day_pass(&forger), &fake_operator, &forger.device, NOW);
    assert_eq!(reason(&gate(1, Direction::Entry).validate(&code, NOW)), Some(RefusalReason::Forged));
}

#[test]
fn tampered_ticket_fields_and_tampered_proof_bytes() {
    let rider = Rider::new();
    let genuine = day_pass(&rider);
    let genuine_bytes = genuine.sign(&operator()).unwrap();
    // Validity stretched by a month, the operator's signature kept.
    let stretched = Ticket { valid_until: genuine.valid_until + 30 * 24 * HOUR, ..genuine.clone() };
    let mut altered = stretched.sign(&Ed25519Signer::from_seed(&[1; 32], b"1".to_vec()).unwrap()).unwrap();
    let n = altered.len();
    altered[n - 64..].copy_from_slice(&genuine_bytes[genuine_bytes.len() - 64..]);
    let code = make_code(&genuine_bytes, NOW, &rider.device).unwrap();
    let proof = &code[code.len() - 69..]; // slot start varint (5 bytes) and proof signature
    let tampered = [&[wire::CODE_VERSION][..], &altered, proof].concat();
    assert!(wire::parse_code(&tampered).is_ok());
    let g = gate(1, Direction::Entry);
    assert_eq!(reason(&g.validate(&tampered, NOW)), Some(RefusalReason::Tampered));
    // A proof signature no key can have made (r above the group order).
    let mut bad_proof = code.clone();
    let n = bad_proof.len();
    bad_proof[n - 64..n - 32].fill(0xff);
    assert_eq!(reason(&g.validate(&bad_proof, NOW)), Some(RefusalReason::Tampered));
    // s = 0.
    let mut zero_s = code.clone();
    zero_s[n - 32..].fill(0);
    assert_eq!(reason(&g.validate(&zero_s, NOW)), Some(RefusalReason::Tampered));
}

#[test]
fn any_single_bit_flip_is_refused() {
    let rider = Rider::new();
    let code = code_for(&day_pass(&rider), &operator(), &rider.device, NOW);
    let g = gate(1, Direction::Entry);
    for i in 0..code.len() {
        for bit in [0, 3, 7] {
            let mut bad = code.clone();
            bad[i] ^= 1 << bit;
            assert!(!g.validate(&bad, NOW).is_accept(), "byte {i} bit {bit} accepted");
        }
    }
}

#[test]
fn the_same_ticket_on_another_phone_is_the_wrong_device() {
    let rider = Rider::new();
    let thief = Rider::new();
    let ticket_bytes = day_pass(&rider).sign(&operator()).unwrap();
    let copied = make_code(&ticket_bytes, NOW, &thief.device).unwrap();
    assert_eq!(reason(&gate(1, Direction::Entry).validate(&copied, NOW)), Some(RefusalReason::WrongDevice));
    assert_eq!(gate(1, Direction::Entry).validate(&copied, NOW).ticket_id(), Some(wire::ticket_id(&ticket_bytes)));
}

#[test]
fn revoked_tickets_are_refused_among_many() {
    let rider = Rider::new();
    let code = code_for(&day_pass(&rider), &operator(), &rider.device, NOW);
    let id = wire::parse_code(&code).unwrap().ticket_id();
    let mut ids: Vec<[u8; 16]> = (0..10_000u32).map(|i| { let mut x = [0u8; 16]; x[..4].copy_from_slice(&i.to_le_bytes()); x }).collect();
    ids.push(id);
    let g = gate(1, Direction::Entry);
    let list = RevocationList::from_ids(1, NOW, ids).sign(&operator()).unwrap();
    assert_eq!(g.update_revocations(&list, NOW).unwrap(), 10_001);
    assert_eq!(reason(&g.validate(&code, NOW)), Some(RefusalReason::Revoked));
    // An older list cannot un-revoke it; a list by another key is refused.
    let older = RevocationList::from_ids(0, NOW, vec![]).sign(&operator()).unwrap();
    assert!(g.update_revocations(&older, NOW).is_err());
    let foreign = RevocationList::from_ids(9, NOW, vec![]).sign(&Ed25519Signer::from_seed(&[3; 32], b"1".to_vec()).unwrap()).unwrap();
    assert!(g.update_revocations(&foreign, NOW).is_err());
    assert_eq!(reason(&g.validate(&code, NOW)), Some(RefusalReason::Revoked));
}

#[test]
fn expired_and_not_yet_valid() {
    let rider = Rider::new();
    let g = gate(1, Direction::Entry);
    let past = Ticket { valid_from: NOW - 48 * HOUR, valid_until: NOW - 24 * HOUR, ..day_pass(&rider) };
    assert_eq!(reason(&g.validate(&code_for(&past, &operator(), &rider.device, NOW), NOW)), Some(RefusalReason::Expired));
    let future = Ticket { valid_from: NOW + HOUR, valid_until: NOW + 25 * HOUR, ..day_pass(&rider) };
    assert_eq!(reason(&g.validate(&code_for(&future, &operator(), &rider.device, NOW), NOW)), Some(RefusalReason::NotYetValid));
    // A rider who entered in time may still leave within the grace.
    let just_ended = Ticket { valid_from: NOW - 24 * HOUR, valid_until: NOW - HOUR, ..day_pass(&rider) };
    let code = code_for(&just_ended, &operator(), &rider.device, NOW);
    assert_eq!(reason(&g.validate(&code, NOW)), Some(RefusalReason::Expired));
    assert!(gate(1, Direction::Exit).validate(&code, NOW).is_accept());
}

#[test]
fn a_screenshot_replayed_a_minute_later_is_stale() {
    let rider = Rider::new();
    let code = code_for(&day_pass(&rider), &operator(), &rider.device, NOW - 60);
    assert_eq!(reason(&gate(1, Direction::Entry).validate(&code, NOW)), Some(RefusalReason::StaleCode));
    // Inside its slot and tolerance it is fresh: 20 s slot + 10 s.
    assert!(gate(1, Direction::Entry).validate(&code, NOW - 60 + 30).is_accept());
    assert_eq!(reason(&gate(1, Direction::Entry).validate(&code, NOW - 60 + 31)), Some(RefusalReason::StaleCode));
}

#[test]
fn clock_skew_is_tolerated_inside_the_window_and_reported_beyond_it() {
    let rider = Rider::new();
    // The phone's clock is two minutes ahead of the gate's: tolerated, reported.
    let ahead = code_for(&day_pass(&rider), &operator(), &rider.device, NOW + 120);
    let Decision::Accept(accepted) = gate(1, Direction::Entry).validate(&ahead, NOW) else { panic!() };
    assert_eq!(accepted.clock_skew_s, Some(120));
    // Ten minutes ahead: beyond the 5-minute window.
    let far = code_for(&day_pass(&rider), &operator(), &rider.device, NOW + 600);
    let Decision::Refuse(refusal) = gate(1, Direction::Entry).validate(&far, NOW) else { panic!() };
    assert_eq!((refusal.reason, refusal.clock_skew_s), (RefusalReason::ClockSkew, Some(600)));
    // The gate's own clock, corrected by the offset learned from the server.
    let g = gate(1, Direction::Entry);
    g.set_clock_offset(240); // the gate is 4 minutes fast
    let fresh = code_for(&day_pass(&rider), &operator(), &rider.device, NOW);
    assert!(g.validate(&fresh, NOW + 240).is_accept());
}

#[test]
fn pass_back_until_an_exit_or_the_window_ends() {
    let rider = Rider::new();
    let g = gate(6, Direction::Entry);
    let code = code_for(&day_pass(&rider), &operator(), &rider.device, NOW);
    assert!(g.validate(&code, NOW).is_accept());
    assert_eq!(reason(&g.validate(&code, NOW + 5)), Some(RefusalReason::PassBack));
    let later = code_for(&day_pass(&rider), &operator(), &rider.device, NOW + 600);
    assert_eq!(reason(&g.validate(&later, NOW + 600)), Some(RefusalReason::PassBack));
    // An exit at a gate of the group (told by a peer) clears it.
    let id = wire::parse_code(&code).unwrap().ticket_id();
    g.record_tap(&Tap { ticket_id: id, direction: Direction::Exit, at: NOW + 700, slot_start: NOW + 690, consumed_until: None }, NOW + 700);
    let again = code_for(&day_pass(&rider), &operator(), &rider.device, NOW + 900);
    assert!(g.validate(&again, NOW + 900).is_accept());
    // After the window without an exit (the rider left at another station), entry is allowed.
    let much_later = code_for(&day_pass(&rider), &operator(), &rider.device, NOW + 900 + 1200);
    assert!(g.validate(&much_later, NOW + 900 + 1200).is_accept());
}

#[test]
fn single_journey_enters_inside_its_stretch_only() {
    let rider = Rider::new();
    let ticket = single(&rider, 3, 8, None);
    let code = code_for(&ticket, &operator(), &rider.device, NOW);
    assert!(gate(3, Direction::Entry).validate(&code, NOW).is_accept());
    assert!(gate(5, Direction::Entry).validate(&code, NOW).is_accept(), "inside the paid stretch");
    assert_eq!(reason(&gate(10, Direction::Entry).validate(&code, NOW)), Some(RefusalReason::WrongStation));
    assert_eq!(reason(&gate(1, Direction::Entry).validate(&code, NOW)), Some(RefusalReason::WrongStation));
}

#[test]
fn single_journey_exit_checks_the_fare_and_consumes_it() {
    let rider = Rider::new();
    let ticket = single(&rider, 3, 5, None);
    let code = code_for(&ticket, &operator(), &rider.device, NOW);
    assert_eq!(reason(&gate(12, Direction::Exit).validate(&code, NOW)), Some(RefusalReason::FareTooLow));
    let exit = gate(5, Direction::Exit);
    let Decision::Accept(accepted) = exit.validate(&code, NOW) else { panic!() };
    assert_eq!(accepted.consumed_until, Some(ticket.valid_until + exit.config().exit_grace_s));
    let again = code_for(&ticket, &operator(), &rider.device, NOW + 2000);
    assert_eq!(reason(&exit.validate(&again, NOW + 2000)), Some(RefusalReason::AlreadyUsed));
    // A shorter trip inside the stretch costs no more than paid.
    let code = code_for(&single(&rider, 3, 8, None), &operator(), &rider.device, NOW);
    assert!(gate(6, Direction::Exit).validate(&code, NOW).is_accept());
}

#[test]
fn concessions_pay_their_own_fare() {
    let rider = Rider::new();
    let student = single(&rider, 1, 14, Some(Concession::Student));
    assert_eq!(student.fare_vnd, 10_000);
    let code = code_for(&student, &operator(), &rider.device, NOW);
    let Decision::Accept(a) = gate(14, Direction::Exit).validate(&code, NOW) else { panic!() };
    assert_eq!(a.concession, Some(1));
    // A student ticket paid for 1 → 3 does not reach 14.
    let short = code_for(&single(&rider, 1, 3, Some(Concession::Student)), &operator(), &rider.device, NOW);
    assert_eq!(reason(&gate(14, Direction::Exit).validate(&short, NOW)), Some(RefusalReason::FareTooLow));
}

#[test]
fn every_reason_has_a_code_and_two_messages() {
    for r in RefusalReason::ALL {
        assert_eq!(RefusalReason::from_code(r.code()), Some(r));
        let (vi, en) = r.message();
        assert!(!vi.is_empty() && !en.is_empty() && vi != en);
    }
}

#[test]
fn one_code_scanned_twice_at_once_is_accepted_once() {
    let rider = Rider::new();
    let code = code_for(&day_pass(&rider), &operator(), &rider.device, NOW);
    let g = std::sync::Arc::new(gate(2, Direction::Entry));
    let accepted: usize = (0..4)
        .map(|_| {
            let (g, code) = (g.clone(), code.clone());
            std::thread::spawn(move || g.validate(&code, NOW).is_accept() as usize)
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(accepted, 1);
}
