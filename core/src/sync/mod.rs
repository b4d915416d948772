//! The one change feed, phone side: pull "changes after my cursor" for every followed feed in one
//! round trip, apply each page and advance its cursor in one local transaction, repeat until
//! caught up. Applying a page twice changes nothing. Cancelling (dropping the future) between
//! pages is safe: every page is all-or-nothing.

pub mod client;
pub mod wire;

use rusqlite::{params, OptionalExtension, Transaction};

use crate::error::{Error, Result};
use crate::identity::{Session, SessionState};
use crate::platform::{NetworkState, Platform};
use crate::store::{now_millis, Store};
use client::ApiClient;
use wire::{Change, FeedCursor, FeedPage, PullRequest, PullResponse};

/// The public feed: catalog and key sets, the same for everyone.
pub const PUBLIC_FEED: &str = "public";
/// The logged-in resident's own feed. On the wire it is just `account` (the server knows whose);
/// on the phone its cursor is kept per account, `account:<id>`, so two accounts never mix.
pub const ACCOUNT_FEED: &str = "account";
pub const PULL_PATH: &str = "v1/sync/pull";
const PAGE_LIMIT: u32 = 200;

/// Where a sync ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Every followed feed was pulled to its end.
    UpToDate,
    /// No network, or the server could not be reached: local data stays usable, try later.
    Offline,
    /// The public feeds are up to date, but the session has ended: the resident's own data
    /// waits until they log in again. Nothing local is lost.
    LoginRequired,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SyncReport {
    pub state: SyncState,
    pub changes_applied: u32,
    pub pages: u32,
    /// Server clock minus phone clock, learned from the last response.
    pub clock_offset_ms: Option<i64>,
}

/// Reported after each applied page. The listener answers whether to go on: `false` stops the
/// sync after this page (it stays applied) with [`Error::Cancelled`].
#[derive(Clone, Debug, PartialEq)]
pub struct SyncProgress {
    pub feed: String,
    pub changes_applied: u32,
    pub has_more: bool,
}

pub(crate) fn read_cursor(store: &Store, feed: &str) -> Result<String> {
    store
        .read("reading a feed cursor", |c| {
            c.query_row("SELECT cursor FROM feed_cursors WHERE feed = ?1", [feed], |r| r.get(0))
                .optional()
        })
        .map(|c| c.unwrap_or_default())
}

/// Routes a change to the capability that owns its kind.
fn apply_change(tx: &Transaction<'_>, change: &Change) -> Result<()> {
    match change.kind.split_once('.').map(|(object, _)| object) {
        Some("procedure") => crate::catalog::changes::apply(tx, change),
        Some("account") => crate::identity::apply_change(tx, change),
        Some("case") => crate::drafts::changes::apply(tx, change),
        Some("draft") => crate::drafts::backup::apply(tx, change),
        Some("ticket") => crate::tickets::changes::apply(tx, change),
        Some("signature") => crate::signing::changes::apply(tx, change),
        _ => {
            // A kind from a newer server: it cannot be applied by this version, and skipping it
            // silently would lose it, so the page is refused and the app asks for an update.
            Err(Error::BadData(format!("unknown change kind {}", change.kind)))
        }
    }
}

/// Applies one page and moves the cursor (kept under `local_feed`), atomically. `reset` first
/// forgets the feed's data.
pub(crate) fn apply_page(store: &Store, page: &FeedPage, local_feed: &str, reset: bool) -> Result<u32> {
    let mut last_seq = 0u64;
    for c in &page.changes {
        if c.seq <= last_seq {
            return Err(Error::BadData(format!("feed {} out of order at {}", page.feed, c.seq)));
        }
        last_seq = c.seq;
    }
    if wire::decode_cursor(&page.cursor).is_none() {
        return Err(Error::BadData(format!("feed {} sent a malformed cursor", page.feed)));
    }
    store.write("applying a feed page", |tx| {
        if reset && page.feed == PUBLIC_FEED {
            crate::catalog::changes::reset(tx)?;
        }
        if reset && page.feed == ACCOUNT_FEED {
            tx.execute("UPDATE session SET profile_seq = 0", []).map_err(Error::db("resetting the account feed"))?;
        }
        for change in &page.changes {
            apply_change(tx, change)?;
        }
        // `synced_at` marks the last time the feed was pulled to its end (0: never), so a sync
        // stopped halfway does not make stale data look fresh.
        let completed_at = if page.has_more { 0 } else { now_millis() };
        tx.execute(
            "INSERT INTO feed_cursors(feed, cursor, synced_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT(feed) DO UPDATE SET cursor = excluded.cursor, \
                 synced_at = CASE WHEN excluded.synced_at > 0 THEN excluded.synced_at ELSE synced_at END",
            params![local_feed, page.cursor, completed_at],
        )
        .map_err(Error::db("advancing a feed cursor"))?;
        Ok(page.changes.len() as u32)
    })
}

/// Pulls every followed feed to its end: the public feed always, the account feed while a
/// session is active (the whole request is then authenticated).
pub(crate) async fn pull_all(
    store: &Store,
    client: &ApiClient,
    platform: &Platform,
    session: &Session<'_>,
    progress: &(dyn Fn(SyncProgress) -> bool + Send + Sync),
) -> Result<SyncReport> {
    let mut report =
        SyncReport { state: SyncState::UpToDate, changes_applied: 0, pages: 0, clock_offset_ms: None };
    let network = platform
        .network
        .current_state()
        .map_err(|e| Error::Platform { service: "network", message: e.0 })?;
    if network == NetworkState::Offline {
        report.state = SyncState::Offline;
        return Ok(report);
    }
    let mut account = session.active_account()?;
    let mut login_required = matches!(session.state()?, SessionState::LoginRequired { .. });
    let mut reset = false;
    loop {
        // (name on the wire, name of the local cursor)
        let mut feeds = vec![(PUBLIC_FEED.to_string(), PUBLIC_FEED.to_string())];
        if let Some(id) = &account {
            feeds.push((ACCOUNT_FEED.to_string(), format!("{ACCOUNT_FEED}:{id}")));
        }
        let mut request = PullRequest { feeds: Vec::new(), limit: Some(PAGE_LIMIT) };
        for (wire_name, local_name) in &feeds {
            let cursor = if reset { String::new() } else { read_cursor(store, local_name)? };
            request.feeds.push(FeedCursor { feed: wire_name.clone(), cursor });
        }
        let sent_at = now_millis();
        let result: Result<PullResponse> = if account.is_some() {
            let body = serde_json::to_vec(&request).map_err(|e| Error::BadData(e.to_string()))?;
            session.send_authorized(client::Method::POST, PULL_PATH, Some((body, "application/json")), None).await
        } else {
            client.post_json(PULL_PATH, &request).await
        };
        let response = match result {
            Ok(r) => r,
            Err(Error::LoginRequired { .. }) if account.is_some() => {
                // The session ended: the public data still comes, the account's waits.
                account = None;
                login_required = true;
                continue;
            }
            Err(Error::Offline(reason)) => {
                tracing::info!("sync: server unreachable ({reason}); local data stays in use");
                report.state = SyncState::Offline;
                return Ok(report);
            }
            Err(Error::ServerRejected { code, .. }) if code == "cursor_ahead" && !reset => {
                // The server's history is older than our cursor (restored backup): start over.
                tracing::warn!("sync: server does not know our cursor; pulling from the start");
                reset = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        let received_at = now_millis();
        let offset = response.server_time_ms - (sent_at + received_at) / 2;
        report.clock_offset_ms = Some(offset);
        client.set_clock_offset_ms(offset);
        let mut more = false;
        for page in &response.feeds {
            let local_name = feeds
                .iter()
                .find(|(wire_name, _)| *wire_name == page.feed)
                .map(|(_, local)| local.as_str())
                .ok_or_else(|| Error::BadData(format!("feed {} was not asked for", page.feed)))?;
            let applied = apply_page(store, page, local_name, reset)?;
            report.changes_applied += applied;
            report.pages += 1;
            more |= page.has_more;
            let keep_going = progress(SyncProgress {
                feed: page.feed.clone(),
                changes_applied: report.changes_applied,
                has_more: page.has_more,
            });
            if !keep_going {
                return Err(Error::Cancelled);
            }
        }
        reset = false;
        if !more {
            if login_required {
                report.state = SyncState::LoginRequired;
            }
            return Ok(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn procedure_json(code: &str, name: &str) -> serde_json::Value {
        json!({
            "code": code, "kind": "procedure",
            "name": {"vi": name, "en": name}, "description": {"vi": "Mô tả", "en": "About"},
            "agency": {"code": "UBND-P1", "name": {"vi": "UBND phường", "en": "Ward"}},
            "fee_vnd": 0, "processing_days": 3,
            "fields": [{"id": "ho_ten", "label": {"vi": "Họ tên", "en": "Name"}, "type": "text", "required": true}]
        })
    }

    fn upsert(seq: u64, code: &str, name: &str) -> Change {
        Change { seq, kind: "procedure.upsert".into(), key: code.into(), data: procedure_json(code, name) }
    }

    fn page(changes: Vec<Change>, cursor: u64) -> FeedPage {
        FeedPage { feed: PUBLIC_FEED.into(), changes, cursor: wire::encode_cursor(cursor), has_more: false }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("core.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn applying_the_same_page_twice_changes_nothing() {
        let (_d, s) = store();
        let p = page(vec![upsert(1, "A-1", "Đăng ký tạm trú"), upsert(2, "B-2", "Khai sinh")], 2);
        apply_page(&s, &p, PUBLIC_FEED, false).unwrap();
        let before = crate::catalog::queries::list(&s, None).unwrap();
        apply_page(&s, &p, PUBLIC_FEED, false).unwrap();
        assert_eq!(crate::catalog::queries::list(&s, None).unwrap(), before);
        assert_eq!(before.len(), 2);
        assert_eq!(read_cursor(&s, PUBLIC_FEED).unwrap(), "1.2");
    }

    #[test]
    fn a_bad_change_leaves_the_cache_and_cursor_as_they_were() {
        let (_d, s) = store();
        apply_page(&s, &page(vec![upsert(1, "A-1", "Tạm trú")], 1), PUBLIC_FEED, false).unwrap();
        let mut broken = upsert(3, "C-3", "Kết hôn");
        broken.data["fields"] = json!("not a list");
        let p = page(vec![upsert(2, "B-2", "Khai sinh"), broken], 3);
        assert!(matches!(apply_page(&s, &p, PUBLIC_FEED, false), Err(Error::BadData(_))));
        let codes: Vec<_> =
            crate::catalog::queries::list(&s, None).unwrap().into_iter().map(|p| p.code).collect();
        assert_eq!(codes, vec!["A-1"]);
        assert_eq!(read_cursor(&s, PUBLIC_FEED).unwrap(), "1.1");
    }

    #[test]
    fn out_of_order_pages_and_unknown_kinds_are_refused() {
        let (_d, s) = store();
        let p = page(vec![upsert(2, "A-1", "x"), upsert(1, "B-1", "y")], 2);
        assert!(matches!(apply_page(&s, &p, PUBLIC_FEED, false), Err(Error::BadData(_))));
        let unknown = Change { seq: 1, kind: "hologram.beam".into(), key: "k".into(), data: json!({}) };
        assert!(matches!(apply_page(&s, &page(vec![unknown], 1), PUBLIC_FEED, false), Err(Error::BadData(_))));
        assert_eq!(read_cursor(&s, PUBLIC_FEED).unwrap(), "");
    }

    #[test]
    fn withdraw_hides_and_older_changes_do_not_overwrite_newer() {
        let (_d, s) = store();
        apply_page(&s, &page(vec![upsert(5, "A-1", "Mới")], 5), PUBLIC_FEED, false).unwrap();
        // A replay of an older page must not bring the old name back.
        apply_page(&s, &page(vec![upsert(3, "A-1", "Cũ")], 5), PUBLIC_FEED, false).unwrap();
        assert_eq!(crate::catalog::queries::get(&s, "A-1").unwrap().unwrap().name.vi, "Mới");
        let w = Change { seq: 6, kind: "procedure.withdraw".into(), key: "A-1".into(), data: json!(null) };
        apply_page(&s, &page(vec![w], 6), PUBLIC_FEED, false).unwrap();
        assert!(crate::catalog::queries::get(&s, "A-1").unwrap().is_none());
        assert!(crate::catalog::queries::list(&s, None).unwrap().is_empty());
    }

    #[test]
    fn search_matches_with_and_without_diacritics() {
        let (_d, s) = store();
        apply_page(
            &s,
            &page(
                vec![
                    upsert(1, "CT-TAM-TRU", "Đăng ký tạm trú"),
                    upsert(2, "HT-KHAI-SINH", "Đăng ký khai sinh"),
                    upsert(3, "XD-GPXD", "Cấp giấy phép xây dựng"),
                ],
                3,
            ),
            PUBLIC_FEED,
            false,
        )
        .unwrap();
        let codes = |q: &str| -> Vec<String> {
            crate::catalog::queries::search(&s, q, 10).unwrap().into_iter().map(|p| p.code).collect()
        };
        assert_eq!(codes("tam tru"), vec!["CT-TAM-TRU"]);
        assert_eq!(codes("Tạm Trú"), vec!["CT-TAM-TRU"]);
        assert_eq!(codes("dang ky").len(), 2);
        assert_eq!(codes("xay dung"), vec!["XD-GPXD"]);
        assert_eq!(codes("đăng ký khai"), vec!["HT-KHAI-SINH"]);
        assert!(codes("hộ chiếu").is_empty());
        assert!(codes("   ").is_empty());
    }
}
