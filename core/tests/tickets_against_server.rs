//! The rider's side against the real server on loopback: tickets bought through the one outbox
//! (online and offline), kept on the phone, brought to the rider's other phone by the account
//! feed, revoked by the feed, and shown as codes that verify with the operator's keys.

use congdan_core::identity::SessionState;
use congdan_core::tickets::store::PurchaseState;
use congdan_core::tickets::wire::verify_code;
use congdan_core::tickets::{Concession, Product, TicketProblem, TicketStatus};
use congdan_core::{Core, Error};
use congdan_server::db::Db;
use congdan_server::RunningServer;

mod phone;
use phone::{login, phone, quiet, server_config as config};

/// The operator's trusted keys, as a gate pulls them.
async fn operator_keys(s: &RunningServer) -> Vec<(Vec<u8>, congdan_core::crypto::PublicKey)> {
    let keys = congdan_server::tickets::keys::trusted(&s.state.db).await.unwrap();
    congdan_server::tickets::keys::key_set(&keys)
}

fn account_id(core: &Core) -> String {
    match core.identity().state().unwrap() {
        SessionState::Active { account, .. } => account.account_id,
        other => panic!("not logged in: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_pass_and_a_single_journey_are_bought_once_and_show_codes_the_gate_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let s = congdan_server::start(config(&tmp.path().join("server"))).await.unwrap();
    let core = phone(&tmp.path().join("phone"), &s.url());
    login(&core, "lan").await;
    core.sync(&quiet).await.unwrap();
    let tickets = core.tickets();
    let day = tickets.buy(Product::DayPass, None, None).unwrap();
    let single = tickets.buy(Product::SingleJourney, Some(1), Some(14)).unwrap();
    let report = core.send_outbox().await.unwrap();
    assert_eq!((report.sent, report.rejected, report.waiting), (2, 0, 0), "{report:?}");
    let purchases = tickets.purchases().unwrap();
    assert!(purchases.iter().all(|p| p.state == PurchaseState::Issued), "{purchases:?}");

    let list = tickets.list().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|t| t.status == TicketStatus::Active), "{list:?}");
    let ticket_of = |purchase: &str| {
        let id = purchases.iter().find(|p| p.id == purchase).unwrap().ticket_id.clone().unwrap();
        list.iter().find(|t| t.id == id).unwrap().clone()
    };
    let (day, single) = (ticket_of(&day), ticket_of(&single));
    assert_eq!((day.product, day.fare_vnd, day.concession), (Product::DayPass, 40_000, None));
    assert_eq!(day.valid_until - day.valid_from, 86_400);
    assert_eq!((single.origin, single.destination, single.fare_vnd), (Some(1), Some(14), 20_000));

    // The codes verify with the operator's keys, bound to this phone's key, for a current slot.
    let keys = operator_keys(&s).await;
    for t in [&day, &single] {
        let code = tickets.current_code(&t.id).unwrap();
        assert!(code.bytes.len() <= 200 && code.qr.version <= 10);
        let verified = verify_code(&code.bytes, &keys).unwrap();
        assert_eq!(congdan_core::crypto::hex(&verified.ticket.id), t.id);
        let server_now = (tickets.server_now_ms().unwrap() / 1000) as u64;
        assert!(verified.slot_start <= server_now && server_now < verified.slot_start + 20);
    }
    // The phone learned the server's clock (same machine: close to 0) and kept it.
    assert!(tickets.clock_offset_ms().unwrap().abs() < 2_000);
    assert!(congdan_core::tickets::store::clock_offset_ms(core.store()).unwrap().is_some());

    // The feed brings the same tickets again: nothing changes.
    core.sync(&quiet).await.unwrap();
    assert_eq!(tickets.list().unwrap(), list);

    // Lan's other phone gets them from the feed, but cannot show them: they are bound to this one.
    let other = phone(&tmp.path().join("other-phone"), &s.url());
    login(&other, "lan").await;
    other.sync(&quiet).await.unwrap();
    let elsewhere = other.tickets().list().unwrap();
    assert_eq!(elsewhere.len(), 2);
    assert!(elsewhere.iter().all(|t| t.status == TicketStatus::OtherDevice));
    assert!(matches!(
        other.tickets().current_code(&day.id),
        Err(Error::Ticket { problem: TicketProblem::OtherDevice })
    ));

    // The operator revokes the day pass: the feed tells the phone, which stops showing it.
    let (ticket_id, account, until) = (day.id.clone(), account_id(&core), day.valid_until as i64);
    match &s.state.db {
        Db::Sqlite(pool) => {
            let revoked = pool
                .write("revoking", move |tx| {
                    congdan_server::tickets::revocations::revoke_sqlite(tx, &ticket_id, &account, until, "refunded")
                })
                .await
                .unwrap();
            assert!(revoked);
        }
        Db::Postgres(_) => unreachable!("embedded SQLite here"),
    }
    core.sync(&quiet).await.unwrap();
    assert_eq!(tickets.get(&day.id).unwrap().status, TicketStatus::Revoked);
    assert_eq!(tickets.get(&day.id).unwrap().revoked_reason.as_deref(), Some("refunded"));
    assert!(matches!(tickets.current_code(&day.id), Err(Error::Ticket { problem: TicketProblem::Revoked })));
    assert_eq!(tickets.get(&single.id).unwrap().status, TicketStatus::Active);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_bought_offline_is_issued_once_when_the_server_is_back_and_shown_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let server_dir = tmp.path().join("server");
    let s = congdan_server::start(config(&server_dir)).await.unwrap();
    let addr = s.addr;
    // An, a verified student: half price, decided by the server.
    let core = phone(&tmp.path().join("phone"), &s.url());
    login(&core, "an").await;
    core.sync(&quiet).await.unwrap();
    s.shutdown().await;

    let tickets = core.tickets();
    let purchase = tickets.buy(Product::MonthlyPass, None, None).unwrap();
    let report = core.send_outbox().await.unwrap();
    assert!(report.offline && report.waiting == 1, "{report:?}");
    assert_eq!(tickets.purchases().unwrap()[0].state, PurchaseState::Waiting);
    assert!(tickets.list().unwrap().is_empty());

    let mut again = config(&server_dir);
    again.listen = addr;
    let s = congdan_server::start(again).await.unwrap();
    core.retry_outbox_now().await.unwrap();
    core.retry_outbox_now().await.unwrap(); // nothing left: the purchase went once
    let bought = tickets.purchases().unwrap();
    assert_eq!(bought.len(), 1);
    assert_eq!((bought[0].id.as_str(), bought[0].state), (purchase.as_str(), PurchaseState::Issued));
    let list = tickets.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].concession, Some(Concession::Student));
    assert_eq!(list[0].fare_vnd, 150_000);
    let keys = operator_keys(&s).await;
    s.shutdown().await;

    // Offline again: the code is still made on the phone, and verifies.
    let code = tickets.current_code(&list[0].id).unwrap();
    let verified = verify_code(&code.bytes, &keys).unwrap();
    assert_eq!(verified.ticket.ticket.concession, Some(Concession::Student));
    assert_eq!(verified.ticket.ticket.product, Product::MonthlyPass);
}
