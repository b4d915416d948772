//! Drafts across a resident's devices, through the one outbox and the account feed (DESIGN §1,
//! §2): a `draft.backup` command (`PUT /v1/drafts/{id}`) carries the draft with the hybrid
//! logical clock of every field, of its title and of its deletion; the server merges per field
//! (the greater stamp wins, a newer clear too) and appends one `draft.upsert` change with the
//! merged draft to the account feed, which every device of the resident applies with the same
//! merge. The merge is commutative and idempotent, so the order of sends and changes never
//! matters and a whole draft is never lost to a conflict.
//!
//! Autosave stays one row write: a draft has at most one *unbuilt* backup command waiting
//! (`drafts.backup_pending = 1`), whose payload is built when it is first sent (so fifty
//! keystrokes make one upload of the latest state). Once built, the payload is kept for the
//! command's retries (same idempotency key, same body) and the next edit queues a new command.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::hlc::Hlc;
use crate::error::{Error, Result};
use crate::identity::Session;
use crate::outbox::{self, Rejection};
use crate::store::{now_millis, Store};
use crate::sync::wire::Change;

/// The outbox kind of a draft's backup.
pub const BACKUP_KIND: &str = "draft.backup";
/// The account-feed change kind with a merged draft.
pub const UPSERT_CHANGE: &str = "draft.upsert";
/// At most this many fields in one draft.
pub const MAX_FIELDS: usize = 200;
/// The largest field value, as JSON.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// `v1/drafts/{draft_id}`.
pub fn backup_path(draft_id: &str) -> String {
    format!("v1/drafts/{draft_id}")
}

/// One field with the stamp of its last edit; `value: null` is a clear.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupField {
    pub field_id: String,
    /// A `FieldValue` as JSON (kept as JSON so a newer app's value type survives the trip).
    pub value: Option<serde_json::Value>,
    pub hlc: Hlc,
}

/// A draft as backed up (the `PUT` body) and as merged (the answer and the `draft.upsert` data).
/// `title_hlc`/`deleted_hlc` are absent until the title was renamed / the draft deleted or
/// restored (absent orders before every stamp).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftBackup {
    pub draft_id: String,
    pub procedure_code: String,
    pub title: String,
    #[serde(default)]
    pub title_hlc: Option<Hlc>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub deleted_hlc: Option<Hlc>,
    #[serde(default)]
    pub fields: Vec<BackupField>,
}

impl DraftBackup {
    /// Every stamp the draft carries.
    pub fn stamps(&self) -> impl Iterator<Item = &Hlc> {
        self.title_hlc.iter().chain(self.deleted_hlc.iter()).chain(self.fields.iter().map(|f| &f.hlc))
    }
}

/// The per-field last-writer-wins merge: for the title, the deletion and each field, the side
/// with the greater stamp. Commutative, associative and idempotent (ties, which only an
/// identical edit can make, break on the value so both orders agree).
pub fn merge(a: &DraftBackup, b: &DraftBackup) -> DraftBackup {
    fn pick<'x, T: PartialOrd>(a: (&'x Option<Hlc>, &'x T), b: (&'x Option<Hlc>, &'x T)) -> (&'x Option<Hlc>, &'x T) {
        if a.0 > b.0 || (a.0 == b.0 && a.1 >= b.1) {
            a
        } else {
            b
        }
    }
    let (title_hlc, title) = pick((&a.title_hlc, &a.title), (&b.title_hlc, &b.title));
    let (deleted_hlc, deleted) = pick((&a.deleted_hlc, &a.deleted), (&b.deleted_hlc, &b.deleted));
    let mut fields: BTreeMap<&str, &BackupField> = BTreeMap::new();
    for f in a.fields.iter().chain(b.fields.iter()) {
        match fields.get(f.field_id.as_str()) {
            Some(kept) if (&kept.hlc, kept.value.as_ref().map(|v| v.to_string()))
                >= (&f.hlc, f.value.as_ref().map(|v| v.to_string())) => {}
            _ => {
                fields.insert(&f.field_id, f);
            }
        }
    }
    DraftBackup {
        draft_id: a.draft_id.clone(),
        procedure_code: if a.procedure_code.is_empty() { b.procedure_code.clone() } else { a.procedure_code.clone() },
        title: title.clone(),
        title_hlc: title_hlc.clone(),
        deleted: *deleted,
        deleted_hlc: deleted_hlc.clone(),
        fields: fields.into_values().cloned().collect(),
    }
}

fn stamp_text(h: &Option<Hlc>) -> String {
    h.as_ref().map(Hlc::to_string).unwrap_or_default()
}

fn parse_stamp(s: &str) -> Option<Hlc> {
    s.parse().ok()
}

/// Queues a backup of the draft unless an unbuilt one already waits, and says whether it queued
/// one. Called in the transaction of the change (create, edit, rename, delete, restore);
/// `pending` is the draft's `backup_pending` when the caller already read it (the autosave
/// path), so an edit with a backup waiting writes nothing more.
pub(crate) fn enqueue(tx: &Transaction<'_>, draft_id: &str, pending: Option<bool>) -> Result<bool> {
    let pending = match pending {
        Some(p) => p,
        None => tx
            .query_row("SELECT backup_pending FROM drafts WHERE id = ?1", [draft_id], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(Error::db("queueing a draft backup"))?
            .is_some_and(|p| p != 0),
    };
    if pending {
        return Ok(false);
    }
    outbox::enqueue(tx, BACKUP_KIND, draft_id, &serde_json::Value::Null)?;
    tx.prepare_cached("UPDATE drafts SET backup_pending = 1 WHERE id = ?1")
        .and_then(|mut s| s.execute([draft_id]))
        .map_err(Error::db("queueing a draft backup"))?;
    Ok(true)
}

/// A submission carries the values itself: an unbuilt backup waiting for the draft goes.
pub(crate) fn forget_pending(tx: &Transaction<'_>, draft_id: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM outbox WHERE kind = ?1 AND subject = ?2 AND state = 'waiting' AND payload = 'null'",
        params![BACKUP_KIND, draft_id],
    )
    .map_err(Error::db("dropping a draft backup"))?;
    tx.execute("UPDATE drafts SET backup_pending = 0 WHERE id = ?1", [draft_id])
        .map_err(Error::db("dropping a draft backup"))?;
    Ok(())
}

/// The draft as the store holds it now, deleted or not.
pub(crate) fn snapshot(tx: &Transaction<'_>, draft_id: &str) -> Result<Option<DraftBackup>> {
    let ctx = "reading a draft for its backup";
    let row: Option<(String, String, String, Option<i64>, String)> = tx
        .query_row(
            "SELECT procedure_code, title, title_hlc, deleted_at, deleted_hlc FROM drafts WHERE id = ?1",
            [draft_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
        .map_err(Error::db(ctx))?;
    let Some((procedure_code, title, title_hlc, deleted_at, deleted_hlc)) = row else { return Ok(None) };
    let mut stmt = tx
        .prepare_cached("SELECT field_id, value, hlc FROM draft_fields WHERE draft_id = ?1 ORDER BY field_id")
        .map_err(Error::db(ctx))?;
    let rows = stmt
        .query_map([draft_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, String>(2)?)))
        .map_err(Error::db(ctx))?;
    let mut fields = Vec::new();
    for row in rows {
        let (field_id, value, hlc) = row.map_err(Error::db(ctx))?;
        // A field without a readable stamp or value cannot take part in a merge: it stays local.
        let (Some(hlc), Ok(value)) = (parse_stamp(&hlc), value.map(|v| serde_json::from_str(&v)).transpose()) else {
            continue;
        };
        fields.push(BackupField { field_id, value, hlc });
    }
    Ok(Some(DraftBackup {
        draft_id: draft_id.to_string(),
        procedure_code,
        title,
        title_hlc: parse_stamp(&title_hlc),
        deleted: deleted_at.is_some(),
        deleted_hlc: parse_stamp(&deleted_hlc),
        fields,
    }))
}

/// The outbox's sender for `draft.backup`: builds the body on the first attempt (and keeps it
/// for retries), then `PUT`s it with the command's idempotency key.
pub(crate) fn send<'a>(
    store: &'a Store,
    session: &'a Session<'a>,
    draft_id: &'a str,
) -> crate::drafts::attachments::UploadFuture<'a> {
    Box::pin(async move {
        let (key, body) = store.write("building a draft backup", |tx| {
            let (key, payload): (String, String) = tx
                .query_row(
                    "SELECT idempotency_key, payload FROM outbox WHERE kind = ?1 AND subject = ?2 AND state = 'sending' \
                     ORDER BY id DESC LIMIT 1",
                    params![BACKUP_KIND, draft_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(Error::db("building a draft backup"))?;
            if payload != "null" {
                return Ok((key, payload));
            }
            let Some(draft) = snapshot(tx, draft_id)? else {
                return Err(Error::NotFound { what: "draft" });
            };
            let body = serde_json::to_string(&draft).map_err(|e| Error::BadData(e.to_string()))?;
            tx.execute("UPDATE outbox SET payload = ?2 WHERE idempotency_key = ?1", params![key, body])
                .map_err(Error::db("building a draft backup"))?;
            tx.execute("UPDATE drafts SET backup_pending = 0 WHERE id = ?1", [draft_id])
                .map_err(Error::db("building a draft backup"))?;
            Ok((key, body))
        })?;
        session
            .send_authorized(
                crate::sync::client::Method::PUT,
                &backup_path(draft_id),
                Some((body.into_bytes(), "application/json")),
                Some(&key),
            )
            .await
    })
}

/// The server answers with the merged draft: apply it now (the feed brings the same later).
pub(crate) fn backed_up(tx: &Transaction<'_>, _draft_id: &str, result: &serde_json::Value) -> Result<()> {
    match serde_json::from_value::<DraftBackup>(result.clone()) {
        Ok(merged) => apply_merged(tx, &merged),
        Err(_) => Ok(()),
    }
}

/// A refused backup keeps its reason on the outbox item; the draft itself stays as it is.
pub(crate) fn backup_refused(_tx: &Transaction<'_>, _draft_id: &str, _rejection: &Rejection) -> Result<()> {
    Ok(())
}

/// Applies a `draft.upsert` change of the account feed.
pub(crate) fn apply(tx: &Transaction<'_>, change: &Change) -> Result<()> {
    match change.kind.as_str() {
        UPSERT_CHANGE => {
            let merged: DraftBackup = serde_json::from_value(change.data.clone())
                .map_err(|e| Error::BadData(format!("draft.upsert: {e}")))?;
            apply_merged(tx, &merged)
        }
        other => Err(Error::BadData(format!("unknown change kind {other}"))),
    }
}

/// Merges a draft from another device into the local one, per field by stamp: a draft unknown
/// here is created; a frozen one (submitting, submitted) is left as it is. Applying the same
/// draft twice changes nothing (only strictly newer stamps replace).
pub(crate) fn apply_merged(tx: &Transaction<'_>, remote: &DraftBackup) -> Result<()> {
    let ctx = "merging a draft from another device";
    let now = now_millis();
    note_merged_stamp(tx, remote)?;
    let state: Option<String> = tx
        .query_row("SELECT state FROM drafts WHERE id = ?1", [&remote.draft_id], |r| r.get(0))
        .optional()
        .map_err(Error::db(ctx))?;
    match state.as_deref() {
        None => {
            tx.execute(
                "INSERT INTO drafts(id, procedure_code, title, title_hlc, state, deleted_at, deleted_hlc, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, 'editing', ?5, ?6, ?7, ?7)",
                params![
                    remote.draft_id, remote.procedure_code, remote.title, stamp_text(&remote.title_hlc),
                    remote.deleted.then_some(now), stamp_text(&remote.deleted_hlc), now
                ],
            )
            .map_err(Error::db(ctx))?;
        }
        Some("submitting") | Some("submitted") => return Ok(()),
        Some(_) => {
            if let Some(h) = &remote.title_hlc {
                tx.execute(
                    "UPDATE drafts SET title = ?2, title_hlc = ?3, updated_at = ?4 WHERE id = ?1 AND title_hlc < ?3",
                    params![remote.draft_id, remote.title, h.to_string(), now],
                )
                .map_err(Error::db(ctx))?;
            }
            if let Some(h) = &remote.deleted_hlc {
                tx.execute(
                    "UPDATE drafts SET deleted_at = CASE WHEN ?2 THEN coalesce(deleted_at, ?4) ELSE NULL END, \
                     deleted_hlc = ?3 WHERE id = ?1 AND deleted_hlc < ?3",
                    params![remote.draft_id, remote.deleted, h.to_string(), now],
                )
                .map_err(Error::db(ctx))?;
            }
        }
    }
    let mut upsert = tx
        .prepare_cached(
            "INSERT INTO draft_fields(draft_id, field_id, value, hlc, edited_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(draft_id, field_id) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, \
                 edited_at = excluded.edited_at WHERE excluded.hlc > draft_fields.hlc",
        )
        .map_err(Error::db(ctx))?;
    for f in &remote.fields {
        let value = f.value.as_ref().map(|v| v.to_string());
        upsert
            .execute(params![remote.draft_id, f.field_id, value, f.hlc.to_string(), (f.hlc.wall_ms as i64).min(now)])
            .map_err(Error::db(ctx))?;
    }
    Ok(())
}

/// The `meta` key holding the newest stamp ever merged from another device.
const MERGED_STAMP_KEY: &str = "drafts.newest_merged_stamp";

/// Remembers the newest stamp of a merged draft, so that after a sync or an outbox drain the
/// clock is moved past it with one primary-key read ([`newest_merged_stamp`]) instead of a scan
/// of every field. Stamps sort as text (their `Display` form is ordered), as `max(hlc)` relies on.
fn note_merged_stamp(tx: &Transaction<'_>, remote: &DraftBackup) -> Result<()> {
    let newest = remote
        .fields
        .iter()
        .map(|f| &f.hlc)
        .chain(remote.title_hlc.iter())
        .chain(remote.deleted_hlc.iter())
        .max();
    let Some(newest) = newest else { return Ok(()) };
    tx.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = max(meta.value, excluded.value)",
        params![MERGED_STAMP_KEY, newest.to_string()],
    )
    .map_err(Error::db("remembering the newest merged draft stamp"))?;
    Ok(())
}

/// The newest stamp merged from another device (see [`note_merged_stamp`]).
pub(crate) fn newest_merged_stamp(store: &Store) -> Result<Option<Hlc>> {
    let text: Option<String> = store.read("reading the newest merged draft stamp", |c| {
        c.query_row("SELECT value FROM meta WHERE key = ?1", [MERGED_STAMP_KEY], |r| r.get(0)).optional()
    })?;
    Ok(text.and_then(|t| t.parse().ok()))
}

/// The newest stamp the store holds (local or merged from another device), to keep this
/// device's clock after it: an edit made after seeing another device's orders after it.
/// A scan of every stamp: run once when the store opens (this device's own stamps may be ahead
/// of a clock that went back while the app was closed); later merges go through the `meta` key.
pub(crate) fn newest_stamp(store: &Store) -> Result<Option<Hlc>> {
    let text: Option<String> = store.read("reading the newest draft stamp", |c| {
        c.query_row(
            "SELECT max(coalesce((SELECT max(hlc) FROM draft_fields), ''), \
                        coalesce((SELECT max(title_hlc) FROM drafts), ''), \
                        coalesce((SELECT max(deleted_hlc) FROM drafts), ''))",
            [],
            |r| r.get(0),
        )
    })?;
    Ok(text.and_then(|t| t.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drafts::store::{self as drafts_store, DraftState};
    use serde_json::json;

    fn h(wall: u64, node: &str) -> Hlc {
        Hlc { wall_ms: wall, counter: 0, node: node.into() }
    }

    fn field(id: &str, value: Option<serde_json::Value>, hlc: Hlc) -> BackupField {
        BackupField { field_id: id.into(), value, hlc }
    }

    fn draft(fields: Vec<BackupField>) -> DraftBackup {
        DraftBackup {
            draft_id: "d1".into(),
            procedure_code: "CT-TAM-TRU".into(),
            title: "Tạm trú".into(),
            title_hlc: None,
            deleted: false,
            deleted_hlc: None,
            fields,
        }
    }

    fn text(s: &str) -> serde_json::Value {
        json!({"type": "text", "value": s})
    }

    #[test]
    fn merge_is_per_field_and_order_free_and_a_newer_clear_wins() {
        let a = DraftBackup {
            title: "An".into(),
            title_hlc: Some(h(5, "a")),
            ..draft(vec![
                field("full_name", Some(text("Nguyễn Văn An")), h(10, "a")),
                field("phone", Some(text("0901234567")), h(30, "a")),
            ])
        };
        let b = draft(vec![
            field("full_name", Some(text("Nguyễn Văn Ân")), h(20, "b")),
            field("phone", None, h(40, "b")),
            field("note", Some(text("x")), h(1, "b")),
        ]);
        let ab = merge(&a, &b);
        assert_eq!(ab, merge(&b, &a), "both orders give the same draft");
        assert_eq!(merge(&ab, &a), ab, "merging again changes nothing");
        let by_id: BTreeMap<_, _> = ab.fields.iter().map(|f| (f.field_id.as_str(), f)).collect();
        assert_eq!(by_id["full_name"].value, Some(text("Nguyễn Văn Ân")));
        assert_eq!(by_id["phone"].value, None, "the newer clear wins");
        assert_eq!(by_id["note"].value, Some(text("x")));
        assert_eq!(ab.title, "An");
        let deleted = DraftBackup { deleted: true, deleted_hlc: Some(h(50, "b")), ..b.clone() };
        assert!(merge(&a, &deleted).deleted && merge(&deleted, &a).deleted);
    }

    fn store_with_catalog() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("core.db")).unwrap();
        (dir, s)
    }

    fn local_draft(s: &Store, id: &str) {
        s.write("t", |tx| {
            drafts_store::insert(tx, id, "CT-TAM-TRU", "Tạm trú")?;
            tx.execute(
                "INSERT INTO draft_fields(draft_id, field_id, value, hlc, edited_at) VALUES (?1, 'full_name', ?2, ?3, 0)",
                params![id, text("Local").to_string(), h(15, "a").to_string()],
            )
            .map_err(Error::db("t"))?;
            Ok(())
        })
        .unwrap();
    }

    fn values(s: &Store, id: &str) -> BTreeMap<String, Option<String>> {
        s.read("t", |c| {
            let mut stmt = c.prepare("SELECT field_id, value FROM draft_fields WHERE draft_id = ?1")?;
            let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .unwrap()
    }

    #[test]
    fn applying_creates_merges_and_twice_changes_nothing() {
        let (_d, s) = store_with_catalog();
        local_draft(&s, "d1");
        let remote = draft(vec![
            field("full_name", Some(text("Older")), h(10, "b")),
            field("phone", Some(text("0901234567")), h(20, "b")),
        ]);
        s.write("t", |tx| apply_merged(tx, &remote)).unwrap();
        let once = values(&s, "d1");
        assert_eq!(once["full_name"].as_deref(), Some(text("Local").to_string().as_str()), "local newer stays");
        assert_eq!(once["phone"].as_deref(), Some(text("0901234567").to_string().as_str()));
        s.write("t", |tx| apply_merged(tx, &remote)).unwrap();
        assert_eq!(values(&s, "d1"), once);
        let clear = draft(vec![field("full_name", None, h(16, "b"))]);
        s.write("t", |tx| apply_merged(tx, &clear)).unwrap();
        assert_eq!(values(&s, "d1")["full_name"], None, "a newer remote clear replaces");
        // A draft made on the other device appears.
        let other = DraftBackup { draft_id: "d2".into(), ..remote.clone() };
        s.write("t", |tx| apply_merged(tx, &other)).unwrap();
        assert_eq!(drafts_store::get(&s, "d2").unwrap().unwrap().summary.state, DraftState::Editing);
        assert_eq!(newest_stamp(&s).unwrap(), Some(h(20, "b")));
        // The merged high-water mark follows the merges and never goes back.
        assert_eq!(newest_merged_stamp(&s).unwrap(), Some(h(20, "b")));
        let older = draft(vec![field("phone", None, h(5, "c"))]);
        s.write("t", |tx| apply_merged(tx, &older)).unwrap();
        assert_eq!(newest_merged_stamp(&s).unwrap(), Some(h(20, "b")));
        let newer = draft(vec![field("phone", None, h(30, "c"))]);
        s.write("t", |tx| apply_merged(tx, &newer)).unwrap();
        assert_eq!(newest_merged_stamp(&s).unwrap(), Some(h(30, "c")));
    }

    #[test]
    fn delete_propagates_but_a_frozen_draft_is_untouched() {
        let (_d, s) = store_with_catalog();
        local_draft(&s, "d1");
        local_draft(&s, "d2");
        s.write("t", |tx| drafts_store::set_state(tx, "d2", DraftState::Submitted)).unwrap();
        let deleted = |id: &str| DraftBackup {
            draft_id: id.into(),
            deleted: true,
            deleted_hlc: Some(h(100, "b")),
            ..draft(vec![field("full_name", Some(text("Remote")), h(100, "b"))])
        };
        s.write("t", |tx| apply_merged(tx, &deleted("d1"))).unwrap();
        s.write("t", |tx| apply_merged(tx, &deleted("d2"))).unwrap();
        assert!(drafts_store::get(&s, "d1").unwrap().is_none(), "deleted on the other device");
        let frozen = drafts_store::get(&s, "d2").unwrap().expect("a submitted draft is never deleted by a merge");
        assert_eq!(frozen.values["full_name"], crate::drafts::validation::FieldValue::Text("Local".into()));
        // An older restore does not bring it back; a newer one does.
        let restore = |wall| DraftBackup { draft_id: "d1".into(), deleted: false, deleted_hlc: Some(h(wall, "a")), ..draft(vec![]) };
        s.write("t", |tx| apply_merged(tx, &restore(90))).unwrap();
        assert!(drafts_store::get(&s, "d1").unwrap().is_none());
        s.write("t", |tx| apply_merged(tx, &restore(110))).unwrap();
        assert!(drafts_store::get(&s, "d1").unwrap().is_some());
    }
}
