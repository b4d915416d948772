//! The real core logging in against the real server and its built-in development identity
//! provider on loopback: PKCE login, DPoP-bound calls, refresh (ahead of expiry, once for racing
//! calls, and across a lost response), sealed tokens, offline, ended sessions, logout.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use congdan_core::identity::dev_browser;
use congdan_core::identity::SessionState;
use congdan_core::platform::Platform;
use congdan_core::sync::SyncState;
use congdan_core::{Core, CoreConfig, Error, LoginError, LoginRequiredReason};
use congdan_server::db::Db;
use congdan_server::{RunningServer, ServerConfig};

mod common;
use common::{Fault, FaultProxy};

mod phone;
use phone::{phone, quiet, server_config as config, try_login as login, REDIRECT};

async fn server(dir: &std::path::Path, tune: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    let mut config = config(dir);
    tune(&mut config);
    congdan_server::start(config).await.unwrap()
}

/// Rows in a server table (the server's SQLite file, read directly).
async fn count(s: &RunningServer, sql: &'static str) -> i64 {
    match &s.state.db {
        Db::Sqlite(pool) => pool.read("counting", move |c| c.query_row(sql, [], |r| r.get(0))).await.unwrap(),
        Db::Postgres(_) => unreachable!("these tests run the embedded SQLite server"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_call_refresh_once_for_racing_calls_then_logout() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server"), |c| c.identity.access_token_ttl_secs = 2).await;
    let core = phone(&tmp.path().join("phone"), &s.url());
    assert_eq!(core.identity().state().unwrap(), SessionState::LoggedOut);
    assert!(matches!(
        core.identity().account().await,
        Err(Error::LoginRequired { reason: LoginRequiredReason::NotLoggedIn })
    ));

    let account = login(&core, "lan").await.unwrap();
    assert_eq!(account.display_name, "Nguyễn Thị Lan");
    assert_eq!(account.national_id_masked, "079*******45");
    assert_eq!(account.roles, vec!["resident".to_string()]);
    assert!(matches!(core.identity().state().unwrap(), SessionState::Active { .. }));
    assert_eq!(core.identity().account().await.unwrap(), account);

    // One sync brings the catalog and the account feed (its profile change).
    let report = core.sync(&quiet).await.unwrap();
    assert_eq!(report.state, SyncState::UpToDate);
    assert!(report.changes_applied >= 9, "catalog + profile: {}", report.changes_applied);
    assert_eq!(count(&s, "SELECT count(*) FROM refresh_tokens").await, 1);

    // The access token expires; eight calls race: all succeed after exactly one refresh.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let core = core.clone();
            tokio::spawn(async move { core.identity().account().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().account_id, account.account_id);
    }
    assert_eq!(count(&s, "SELECT count(*) FROM refresh_tokens").await, 2, "one refresh for eight racing calls");

    // Logout revokes the family on the server and wipes the session here; the catalog stays.
    let procedures = core.catalog().status().unwrap().procedure_count;
    assert!(core.identity().logout().await.unwrap());
    assert_eq!(count(&s, "SELECT count(*) FROM token_families WHERE revoked_at IS NOT NULL").await, 1);
    assert_eq!(core.identity().state().unwrap(), SessionState::LoggedOut);
    assert!(matches!(core.identity().account().await, Err(Error::LoginRequired { .. })));
    assert_eq!(core.catalog().status().unwrap().procedure_count, procedures);
    assert_eq!(core.sync(&quiet).await.unwrap().state, SyncState::UpToDate, "the public feed needs no login");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_sealed_at_rest_and_useless_without_the_keystore() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server"), |_| {}).await;
    let dir = tmp.path().join("phone");
    let core = phone(&dir, &s.url());
    login(&core, "minh").await.unwrap();
    drop(core);

    // Neither token is in the database file or its WAL in the clear: no access token (a signed
    // statement starts with "CD\x01", "Q0QB" in base64url) and no token JSON.
    let mut bytes = std::fs::read(dir.join(Core::DATABASE_FILE)).unwrap();
    bytes.extend(std::fs::read(dir.join(format!("{}-wal", Core::DATABASE_FILE))).unwrap_or_default());
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(b"Q0QB"), "an access token in the clear");
    assert!(!contains(b"refresh_token"), "token JSON in the clear");
    assert!(!contains(b"079204001234"), "the national ID number");

    // The same files with another device's keystore: the session cannot be opened.
    let copy = tmp.path().join("copied-phone");
    std::fs::create_dir_all(&copy).unwrap();
    for name in [Core::DATABASE_FILE.to_string(), format!("{}-wal", Core::DATABASE_FILE)] {
        if dir.join(&name).exists() {
            std::fs::copy(dir.join(&name), copy.join(&name)).unwrap();
        }
    }
    let thief = Core::open(
        CoreConfig::new(&copy, s.url()),
        Platform::software(&tmp.path().join("other-keystore")).unwrap(),
    )
    .unwrap();
    assert!(matches!(thief.identity().account().await, Err(Error::Platform { service: "keystore", .. })));
    // A phone whose keystore lost its key is not stuck: a new login replaces the unreadable session.
    login(&thief, "lan").await.unwrap();
    assert_eq!(thief.identity().account().await.unwrap().display_name, "Nguyễn Thị Lan");

    // The owner, reopened, still works.
    let owner = phone(&dir, &s.url());
    assert_eq!(owner.identity().account().await.unwrap().display_name, "Trần Văn Minh");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_keeps_the_session_and_only_server_calls_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server"), |_| {}).await;
    let url = s.url();
    let core = phone(&tmp.path().join("phone"), &url);
    login(&core, "lan").await.unwrap();
    core.sync(&quiet).await.unwrap();
    s.shutdown().await;

    assert!(matches!(core.identity().account().await, Err(Error::Offline(_))));
    assert_eq!(core.sync(&quiet).await.unwrap().state, SyncState::Offline);
    assert!(matches!(core.identity().state().unwrap(), SessionState::Active { .. }));
    assert_eq!(core.catalog().search("tam tru", 5).unwrap()[0].code, "CT-TAM-TRU");
    // Logging out offline wipes the session here; the server could not be told.
    assert!(!core.identity().logout().await.unwrap());
    assert_eq!(core.identity().state().unwrap(), SessionState::LoggedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_asks_for_login_and_keeps_everything_local() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server"), |c| {
        c.identity.access_token_ttl_secs = 1;
        c.identity.refresh_token_ttl_secs = 1;
    })
    .await;
    let core = phone(&tmp.path().join("phone"), &s.url());
    let account = login(&core, "lan").await.unwrap();
    core.sync(&quiet).await.unwrap();
    let procedures = core.catalog().status().unwrap().procedure_count;

    // Both tokens run out: the refresh is refused, the session says why, local data stays.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(matches!(
        core.identity().account().await,
        Err(Error::LoginRequired { reason: LoginRequiredReason::Expired })
    ));
    match core.identity().state().unwrap() {
        SessionState::LoginRequired { account: shown, reason } => {
            assert_eq!(shown, account);
            assert_eq!(reason, LoginRequiredReason::Expired);
        }
        other => panic!("expected LoginRequired, got {other:?}"),
    }
    let report = core.sync(&quiet).await.unwrap();
    assert_eq!(report.state, SyncState::LoginRequired, "public feed synced, account data waits");
    assert_eq!(core.catalog().status().unwrap().procedure_count, procedures);

    // Logging in again brings the session back.
    login(&core, "lan").await.unwrap();
    assert!(matches!(core.identity().state().unwrap(), SessionState::Active { .. }));

    // A session revoked on the server (another device logged it out, an operator blocked it).
    let family: String = match &s.state.db {
        Db::Sqlite(pool) => pool
            .read("family", |c| {
                c.query_row("SELECT id FROM token_families ORDER BY created_at DESC, rowid DESC LIMIT 1", [], |r| r.get(0))
            })
            .await
            .unwrap(),
        Db::Postgres(_) => unreachable!(),
    };
    congdan_server::identity::store::revoke_family(&s.state.db, &family, "test").await.unwrap();
    let refused = core.identity().account().await;
    assert!(matches!(refused, Err(Error::LoginRequired { reason: LoginRequiredReason::Revoked })), "{refused:?}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_callbacks_that_are_not_ours_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server"), |_| {}).await;
    let core = phone(&tmp.path().join("phone"), &s.url());
    let identity = core.identity();
    assert!(matches!(
        identity.login_finish(&format!("{REDIRECT}?code=x&state=y")).await,
        Err(Error::Login(LoginError::NoPendingLogin))
    ));
    let request = identity.login_start(REDIRECT).unwrap();
    let callback = dev_browser::demo_login(&request.authorize_url, "lan", "demo", REDIRECT).await.unwrap();
    // Another state (a forged redirect), another address: refused, the real one still works.
    let forged = callback.replace(&format!("state={}", request.state), "state=forged");
    assert!(matches!(identity.login_finish(&forged).await, Err(Error::Login(LoginError::StateMismatch))));
    let elsewhere = callback.replace("127.0.0.1:1", "127.0.0.1:2");
    assert!(matches!(identity.login_finish(&elsewhere).await, Err(Error::Login(LoginError::RedirectMismatch))));
    identity.login_finish(&callback).await.unwrap();
    // The same answer again: no login is pending any more.
    assert!(matches!(identity.login_finish(&callback).await, Err(Error::Login(LoginError::NoPendingLogin))));
    // A code replayed under a new attempt: the server refuses the used code.
    let again = identity.login_start(REDIRECT).unwrap();
    let code = callback.split("code=").nth(1).unwrap().split('&').next().unwrap();
    let replayed = format!("{REDIRECT}?code={code}&state={}", again.state);
    assert!(matches!(identity.login_finish(&replayed).await, Err(Error::Login(LoginError::CodeRejected(_)))));
    // A refused login at the provider.
    let denied = identity.login_start(REDIRECT).unwrap();
    let answer = format!("{REDIRECT}?error=access_denied&state={}", denied.state);
    assert!(matches!(identity.login_finish(&answer).await, Err(Error::Login(LoginError::Denied(_)))));
    // A wrong password never produces a callback.
    let attempt = identity.login_start(REDIRECT).unwrap();
    assert!(dev_browser::demo_login(&attempt.authorize_url, "lan", "wrong", REDIRECT).await.is_err());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_whose_response_was_lost_is_retried_without_logging_out() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(&tmp.path().join("server"));
    config.identity.access_token_ttl_secs = 1;
    let (proxy, s) = FaultProxy::in_front_of(config).await;
    let core = phone(&tmp.path().join("phone"), &proxy.url());
    let account = login(&core, "lan").await.unwrap();

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let armed = Arc::new(AtomicBool::new(true));
    let fault_armed = armed.clone();
    proxy.set_faults(move |raw| {
        let is_refresh = raw.windows(26).any(|w| w == b"grant_type=refresh_token&r");
        if is_refresh && fault_armed.swap(false, Ordering::SeqCst) {
            Fault::CutResponse
        } else {
            Fault::Pass
        }
    });
    // The refresh succeeds on the server, its answer is lost, the client retries with the old
    // refresh token (fresh DPoP proof): the grace window answers, the resident stays logged in.
    assert_eq!(core.identity().account().await.unwrap().account_id, account.account_id);
    assert!(!armed.load(Ordering::SeqCst), "the fault was injected");
    assert_eq!(count(&s, "SELECT count(*) FROM token_families WHERE revoked_at IS NULL").await, 1);
    // The rotation continues normally afterwards.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(core.identity().account().await.unwrap().account_id, account.account_id);
    assert!(matches!(core.identity().state().unwrap(), SessionState::Active { .. }));
    s.shutdown().await;
}

/// The operator replaced the server's token keys (docs/operations.md: delete the `access_token`
/// rows and restart, to invalidate every access token at once). The phone's access token is now
/// `invalid_token`, but its refresh token is good: the phone refreshes by itself and the resident
/// stays logged in, rather than being sent back to the login screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_token_keys_mean_a_refresh_not_a_new_login() {
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server"), |_| {}).await;
    let core = phone(&tmp.path().join("phone"), &s.url());
    let account = login(&core, "lan").await.unwrap();
    assert_eq!(core.identity().account().await.unwrap(), account);
    assert_eq!(count(&s, "SELECT count(used_at) FROM refresh_tokens").await, 0);

    match &s.state.db {
        Db::Sqlite(pool) => pool
            .write("test", |tx| {
                tx.execute("DELETE FROM signing_keys WHERE purpose = 'access_token'", [])
                    .map_err(|e| congdan_server::db::DbError::Query { context: "test", message: e.to_string() })
            })
            .await
            .unwrap(),
        Db::Postgres(_) => unreachable!(),
    };
    // What a restart does: the instance loads (and so creates) a fresh key.
    s.state.identity.keys.reload().await.unwrap();

    assert_eq!(core.identity().account().await.unwrap(), account, "still logged in");
    assert!(matches!(core.identity().state().unwrap(), SessionState::Active { .. }));
    assert_eq!(count(&s, "SELECT count(used_at) FROM refresh_tokens").await, 1, "by one refresh");
    s.shutdown().await;
}

/// Counts the requests that start with `method_and_path` while shifting the `Date` of the answer
/// to the first of them by `shift_secs` (0: no shift).
fn count_and_shift_once(proxy: &FaultProxy, method_and_path: &'static str, shift_secs: i64) -> Arc<AtomicUsize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    proxy.set_faults(move |raw| {
        if !common::is_request(raw, method_and_path) {
            return Fault::Pass;
        }
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        if first && shift_secs != 0 {
            Fault::ShiftDate(shift_secs)
        } else {
            Fault::Pass
        }
    });
    seen
}

/// A cheap phone's clock jumps (the resident sets it by hand, or the network time arrives) after
/// the core learned the server's time. Its next DPoP proof is an hour off and the server refuses
/// it as `invalid_dpop_proof`; that refusal's `Date` corrects the offset, the core signs a fresh
/// proof, and the call goes through. A refused proof never sends the resident to the login screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_jump_costs_one_retried_call_not_the_login() {
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, s) = FaultProxy::in_front_of(config(&tmp.path().join("server"))).await;
    let core = phone(&tmp.path().join("phone"), &proxy.url());
    let account = login(&core, "lan").await.unwrap();

    // The phone now believes the server is an hour ahead (as if its own clock fell back an hour).
    let seen = count_and_shift_once(&proxy, "GET /v1/me ", 3_600);
    assert_eq!(core.identity().account().await.unwrap(), account);
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    let seen = count_and_shift_once(&proxy, "GET /v1/me ", 0);
    assert_eq!(core.identity().account().await.unwrap(), account, "still logged in");
    assert_eq!(seen.load(Ordering::SeqCst), 2, "the refused proof and the fresh one");
    assert!(matches!(core.identity().state().unwrap(), SessionState::Active { .. }));
    // Once corrected, one request per call again.
    assert_eq!(core.identity().account().await.unwrap(), account);
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    s.shutdown().await;
}

/// The same clock jump, found by a refresh: the refresh grant's proof is refused, retried with
/// the corrected clock, and the session rotates once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_jump_before_a_refresh_costs_one_retried_refresh_not_the_login() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = config(&tmp.path().join("server"));
    config.identity.access_token_ttl_secs = 2;
    let (proxy, s) = FaultProxy::in_front_of(config).await;
    let core = phone(&tmp.path().join("phone"), &proxy.url());
    let account = login(&core, "lan").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // This call refreshes (with the right clock), then its `/v1/me` answer moves the clock.
    count_and_shift_once(&proxy, "GET /v1/me ", 3_600);
    assert_eq!(core.identity().account().await.unwrap(), account);
    let rotations_before = count(&s, "SELECT count(used_at) FROM refresh_tokens").await;

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let token_requests = count_and_shift_once(&proxy, "POST /v1/auth/token ", 0);
    assert_eq!(core.identity().account().await.unwrap(), account, "still logged in");
    assert!(matches!(core.identity().state().unwrap(), SessionState::Active { .. }));
    assert!(token_requests.load(Ordering::SeqCst) >= 2, "the refused refresh was sent again");
    assert_eq!(
        count(&s, "SELECT count(used_at) FROM refresh_tokens").await,
        rotations_before + 1,
        "exactly one rotation"
    );
    assert_eq!(count(&s, "SELECT count(*) FROM token_families WHERE revoked_at IS NULL").await, 1);
    s.shutdown().await;
}

/// A refusal that says nothing about the session (here a middlebox that strips the
/// `Authorization` header, so the server answers `missing_token`) fails that call with the
/// server's reason; the resident stays logged in and the next call works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_of_one_request_keeps_the_session() {
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, s) = FaultProxy::in_front_of(config(&tmp.path().join("server"))).await;
    let core = phone(&tmp.path().join("phone"), &proxy.url());
    let account = login(&core, "lan").await.unwrap();

    proxy.set_faults(|raw| if common::is_request(raw, "GET /v1/me ") { Fault::DropHeader("authorization") } else { Fault::Pass });
    match core.identity().account().await {
        Err(Error::Unauthorised { code, .. }) => assert_eq!(code, "missing_token"),
        other => panic!("expected the server's refusal, got {other:?}"),
    }
    assert!(matches!(core.identity().state().unwrap(), SessionState::Active { .. }), "still logged in");

    proxy.set_faults(|_| Fault::Pass);
    assert_eq!(core.identity().account().await.unwrap(), account);
    s.shutdown().await;
}

/// The identity credential end to end: Ba's phone gets a credential while online; a front-desk
/// device that never logged in fetches the city's keys once; then, with the server gone, Ba shows
/// his name and that he is over 60, and the desk sees exactly that: not his number, not his
/// birth date. A changed code, an old code and a logged-out phone are all refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_code_shows_only_what_the_resident_picks_and_verifies_offline() {
    use congdan_core::identity::credential::{Attribute, CredentialRefusal};
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server"), |_| {}).await;
    let core = phone(&tmp.path().join("phone"), &s.url());
    login(&core, "ba").await.unwrap();
    let held = core.credential().refresh().await.unwrap();
    let names: Vec<Attribute> = held.attributes.iter().map(|a| a.attribute).collect();
    assert_eq!(names, Attribute::ALL.to_vec(), "born 1950: name, number, birth date, over 18, over 60");
    let value = |a: Attribute| held.attributes.iter().find(|x| x.attribute == a).unwrap().value.clone();
    let national_id = value(Attribute::NationalId);
    assert_eq!(value(Attribute::BirthDate), "1950-05-19");
    assert!(held.expires_at >= held.issued_at + 29 * 86_400);

    let desk = phone(&tmp.path().join("desk"), &s.url());
    assert_eq!(desk.credential_verifier().update_keys().await.unwrap(), 1);
    s.shutdown().await;

    // Offline from here on, both devices.
    let code = core.credential().present(&[Attribute::FullName, Attribute::AgeOver60]).unwrap();
    assert!(!code.text.contains(&national_id));
    let seen = desk.credential_verifier().verify(&code.text).unwrap().expect("accepted");
    let shown: Vec<(Attribute, String)> = seen.shown.iter().map(|a| (a.attribute, a.value.clone())).collect();
    assert_eq!(shown, vec![(Attribute::FullName, value(Attribute::FullName)), (Attribute::AgeOver60, "true".to_string())]);
    assert!(congdan_core::identity::credential::qr_symbol(&code.text).is_ok());

    // One character changed in the middle of the code.
    let mut changed: Vec<char> = code.text.chars().collect();
    let middle = changed.len() / 2;
    changed[middle] = if changed[middle] == 'A' { 'B' } else { 'A' };
    let changed: String = changed.into_iter().collect();
    assert!(desk.credential_verifier().verify(&changed).unwrap().is_err());
    // A screenshot shown three minutes later.
    assert_eq!(
        desk.credential_verifier().verify_at(&code.text, code.presented_at + 180).unwrap(),
        Err(CredentialRefusal::Stale)
    );

    // Sealed at rest: the full number is nowhere in the phone's database files.
    for entry in std::fs::read_dir(tmp.path().join("phone")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.windows(national_id.len()).any(|w| w == national_id.as_bytes()), "{path:?} holds the number");
        }
    }

    // Thirty-one days on, the phone itself says the card expired and how to renew it.
    let month_later = (held.expires_at as i64 + 86_400) * 1000;
    match core.credential().present_at(&[Attribute::FullName], month_later) {
        Err(e @ Error::Credential { refusal: CredentialRefusal::Expired }) => assert!(e.user_message().1.contains("renew"), "{:?}", e.user_message()),
        other => panic!("expected an expired credential, got {other:?}"),
    }

    // Logging out (offline) takes the credential off the phone.
    core.identity().logout().await.unwrap();
    assert_eq!(core.credential().held().unwrap(), None);
    assert!(matches!(core.credential().present(&[Attribute::FullName]), Err(Error::NotFound { .. })));
}

/// A credential in its last week is renewed by the next sync, without the resident asking; one
/// with weeks left is not (a sync does not ask the server for a new one every time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_renews_a_credential_in_its_last_week() {
    let tmp = tempfile::tempdir().unwrap();
    let short = server(&tmp.path().join("server"), |c| c.identity.credential_lifetime_secs = 3 * 86_400).await;
    let core = phone(&tmp.path().join("phone"), &short.url());
    login(&core, "lan").await.unwrap();
    let first = core.credential().refresh().await.unwrap();
    assert_eq!(first.expires_at - first.issued_at, 3 * 86_400);
    tokio::time::sleep(Duration::from_millis(1_100)).await; // a new issuing second
    assert_eq!(core.sync(&quiet).await.unwrap().state, SyncState::UpToDate);
    let renewed = core.credential().held().unwrap().unwrap();
    assert!(renewed.issued_at > first.issued_at, "renewed by the sync");
    short.shutdown().await;

    let tmp = tempfile::tempdir().unwrap();
    let normal = server(&tmp.path().join("server"), |_| {}).await;
    let core = phone(&tmp.path().join("phone"), &normal.url());
    login(&core, "lan").await.unwrap();
    let first = core.credential().refresh().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    core.sync(&quiet).await.unwrap();
    assert_eq!(core.credential().held().unwrap().unwrap().issued_at, first.issued_at, "weeks left: kept");
    normal.shutdown().await;
}

/// The operator rotates the city key (a new generation in `signing_keys`). Codes signed with it
/// are `unknown_key` at a desk that has not heard of it; the desk's next sync after its kept keys
/// are a day old fetches them again, and the code is accepted. A fresher desk does not ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_learns_a_rotated_city_key_at_its_next_sync_of_the_day() {
    use congdan_core::crypto::Ed25519Signer;
    use congdan_core::identity::credential::{Attribute, CredentialRefusal};
    let tmp = tempfile::tempdir().unwrap();
    let s = server(&tmp.path().join("server"), |_| {}).await;
    let core = phone(&tmp.path().join("phone"), &s.url());
    login(&core, "lan").await.unwrap();
    let desk_dir = tmp.path().join("desk");
    let desk = phone(&desk_dir, &s.url());
    assert_eq!(desk.credential_verifier().update_keys().await.unwrap(), 1);

    let pkcs8 = Ed25519Signer::generate_pkcs8().unwrap();
    let public = Ed25519Signer::from_pkcs8(&pkcs8, vec![0]).unwrap().public_key().bytes;
    match &s.state.db {
        Db::Sqlite(pool) => pool
            .write("test", move |tx| {
                tx.execute(
                    "INSERT INTO signing_keys(purpose, generation, secret, public_key, created_at) \
                     VALUES ('identity_credential', 1, ?1, ?2, 0)",
                    rusqlite::params![pkcs8, public],
                )
                .map_err(|e| congdan_server::db::DbError::Query { context: "test", message: e.to_string() })
            })
            .await
            .unwrap(),
        Db::Postgres(_) => unreachable!(),
    };
    core.credential().refresh().await.unwrap();
    let code = core.credential().present(&[Attribute::FullName]).unwrap();
    assert_eq!(desk.credential_verifier().verify(&code.text).unwrap(), Err(CredentialRefusal::UnknownKey));

    // Keys fetched a minute ago: a sync leaves them.
    assert_eq!(desk.sync(&quiet).await.unwrap().state, SyncState::UpToDate);
    assert_eq!(desk.credential_verifier().trusted_key_count().unwrap(), 1);
    // A day later: the sync fetches both generations, and the code passes.
    let db = rusqlite::Connection::open(desk_dir.join(Core::DATABASE_FILE)).unwrap();
    db.execute("UPDATE credential_keys SET fetched_at = fetched_at - 86400001", []).unwrap();
    desk.sync(&quiet).await.unwrap();
    assert_eq!(desk.credential_verifier().trusted_key_count().unwrap(), 2);
    assert!(desk.credential_verifier().verify(&code.text).unwrap().is_ok());
    s.shutdown().await;
}
