//! Drafts on the phone: created from a cached procedure, edited one field at a time (autosave:
//! every edit is durable when the call returns), listed, renamed, deleted with undo, submitted
//! through the outbox. Each field keeps the hybrid logical clock of its last edit, so edits from
//! two devices merge per field.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::hlc::Hlc;
use crate::catalog::cache::ProcedureCache;
use crate::catalog::Procedure;
use super::validation::{FieldIssue, FieldValue};
use crate::error::{Error, Result};
use crate::store::{now_millis, Store};

/// Where a draft stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftState {
    /// Being filled in; every edit is saved at once.
    Editing,
    /// Submitted and waiting in the outbox (or being sent): frozen, so what is sent is what the
    /// resident saw.
    Submitting,
    /// The server made it a case (`case_number`).
    Submitted,
    /// The server refused it (`rejection`); editable again.
    Rejected,
}

impl DraftState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DraftState::Editing => "editing",
            DraftState::Submitting => "submitting",
            DraftState::Submitted => "submitted",
            DraftState::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> DraftState {
        match s {
            "submitting" => DraftState::Submitting,
            "submitted" => DraftState::Submitted,
            "rejected" => DraftState::Rejected,
            _ => DraftState::Editing,
        }
    }

    pub fn is_editable(self) -> bool {
        matches!(self, DraftState::Editing | DraftState::Rejected)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DraftSummary {
    pub id: String,
    pub procedure_code: String,
    pub title: String,
    pub state: DraftState,
    pub case_number: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    pub summary: DraftSummary,
    pub values: BTreeMap<String, FieldValue>,
    /// The server's refusal of the last submission, with its field issues.
    pub rejection: Option<crate::outbox::Rejection>,
}

/// Why an edit was refused.
pub(crate) fn locked(state: DraftState) -> Error {
    Error::DraftLocked { state: state.as_str() }
}

pub(crate) fn new_draft_id() -> String {
    crate::crypto::hex(&rand::random::<[u8; 16]>())
}

pub(crate) fn insert(tx: &Transaction<'_>, id: &str, procedure_code: &str, title: &str) -> Result<()> {
    let now = now_millis();
    tx.execute(
        "INSERT INTO drafts(id, procedure_code, title, state, created_at, updated_at) \
         VALUES (?1, ?2, ?3, 'editing', ?4, ?4)",
        params![id, procedure_code, title, now],
    )
    .map_err(Error::db("creating a draft"))?;
    Ok(())
}

/// `updated_at` is the draft row's own change or its latest field edit, whichever is later.
const SUMMARY: &str = "SELECT id, procedure_code, title, state, case_number, created_at, \
     max(updated_at, coalesce((SELECT max(edited_at) FROM draft_fields f WHERE f.draft_id = drafts.id), 0)) \
     AS last_change FROM drafts";

fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DraftSummary> {
    Ok(DraftSummary {
        id: r.get(0)?,
        procedure_code: r.get(1)?,
        title: r.get(2)?,
        state: DraftState::parse(&r.get::<_, String>(3)?),
        case_number: r.get(4)?,
        created_at_ms: r.get(5)?,
        updated_at_ms: r.get(6)?,
    })
}

/// Drafts not deleted, most recently edited first.
pub fn list(store: &Store) -> Result<Vec<DraftSummary>> {
    store.read("listing drafts", |c| {
        let mut stmt = c.prepare_cached(&format!("{SUMMARY} WHERE deleted_at IS NULL ORDER BY last_change DESC, id"))?;
        let rows = stmt.query_map([], summary_from_row)?;
        rows.collect()
    })
}

pub(crate) fn summary(c: &rusqlite::Connection, id: &str) -> rusqlite::Result<Option<DraftSummary>> {
    c.query_row(&format!("{SUMMARY} WHERE id = ?1 AND deleted_at IS NULL"), [id], summary_from_row).optional()
}

pub fn get(store: &Store, id: &str) -> Result<Option<Draft>> {
    store.read("opening a draft", |c| {
        let Some(summary) = summary(c, id)? else { return Ok(None) };
        let mut stmt = c.prepare_cached("SELECT field_id, value FROM draft_fields WHERE draft_id = ?1 AND value IS NOT NULL")?;
        let mut values = BTreeMap::new();
        for row in stmt.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (field, json) = row?;
            // A value this version cannot read (a newer app's type) is kept in the store, not shown.
            if let Ok(value) = serde_json::from_str::<FieldValue>(&json) {
                values.insert(field, value);
            }
        }
        let rejection: Option<String> =
            c.query_row("SELECT rejection FROM drafts WHERE id = ?1", [id], |r| r.get(0))?;
        let rejection = rejection.and_then(|j| serde_json::from_str(&j).ok());
        Ok(Some(Draft { summary, values, rejection }))
    })
}

/// Sets (`Some`) or clears (`None`) one field in one transaction: durable when it returns. The
/// draft must exist and be editable, its procedure cached and active, the field one of its form;
/// a rejected draft being edited goes back to `editing`. Returns the form, for the live check.
/// Every statement is prepared once and cached, and the form is parsed once (`ProcedureCache`):
/// this runs on every keystroke.
pub(crate) fn set_field(
    store: &Store,
    procedures: &ProcedureCache,
    draft_id: &str,
    field_id: &str,
    value: Option<&FieldValue>,
    hlc: &Hlc,
) -> Result<(Arc<Procedure>, bool)> {
    let json = value.map(serde_json::to_string).transpose().map_err(|e| Error::BadData(e.to_string()))?;
    let now = now_millis();
    let ctx = "saving a field";
    store.write(ctx, |tx| {
        // Two primary-key lookups: measured 4-5 µs each, where the same read as one LEFT JOIN
        // took about 30 µs and doubled the cost of a keystroke.
        let row: Option<(String, String, bool)> = tx
            .prepare_cached("SELECT procedure_code, state, backup_pending FROM drafts WHERE id = ?1 AND deleted_at IS NULL")
            .and_then(|mut s| s.query_row([draft_id], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0))).optional())
            .map_err(Error::db(ctx))?;
        let (code, state, backup_pending) = row.ok_or(Error::NotFound { what: "draft" })?;
        let version: Option<(i64, bool)> = tx
            .prepare_cached("SELECT feed_seq, withdrawn FROM procedures WHERE code = ?1")
            .and_then(|mut s| s.query_row([&code], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(Error::db(ctx))?;
        let (feed_seq, withdrawn) = version.map_or((None, None), |(seq, w)| (Some(seq), Some(w)));
        let state = DraftState::parse(&state);
        if !state.is_editable() {
            return Err(locked(state));
        }
        let feed_seq = match (feed_seq, withdrawn) {
            (Some(seq), Some(false)) => seq,
            _ => return Err(Error::ProcedureUnavailable { code }),
        };
        let procedure = procedures.get(tx, &code, feed_seq)?;
        if value.is_some() && !procedure.fields.iter().any(|f| f.id == field_id) {
            return Err(Error::NotFound { what: "form field" });
        }
        // One row written per keystroke: the field carries its own edit time, and the draft row
        // is touched only when a refused draft goes back to editing.
        tx.prepare_cached(
            "INSERT INTO draft_fields(draft_id, field_id, value, hlc, edited_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(draft_id, field_id) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, \
                 edited_at = excluded.edited_at",
        )
        .and_then(|mut s| s.execute(params![draft_id, field_id, json, hlc.to_string(), now]))
        .map_err(Error::db(ctx))?;
        if state == DraftState::Rejected {
            tx.prepare_cached("UPDATE drafts SET state = 'editing' WHERE id = ?1")
                .and_then(|mut s| s.execute([draft_id]))
                .map_err(Error::db(ctx))?;
        }
        // The draft's backup to the account: queued once, built when sent (nothing more written
        // while one waits). The caller learns whether this edit queued it, to schedule the send.
        let backup_queued = super::backup::enqueue(tx, draft_id, Some(backup_pending))?;
        Ok((procedure, backup_queued))
    })
}

pub(crate) fn rename(store: &Store, draft_id: &str, title: &str, hlc: &Hlc) -> Result<()> {
    store.write("renaming a draft", |tx| {
        let n = tx
            .execute(
                "UPDATE drafts SET title = ?2, title_hlc = ?4, updated_at = ?3 WHERE id = ?1 AND deleted_at IS NULL",
                params![draft_id, title, now_millis(), hlc.to_string()],
            )
            .map_err(Error::db("renaming a draft"))?;
        if n == 0 {
            return Err(Error::NotFound { what: "draft" });
        }
        super::backup::enqueue(tx, draft_id, None).map(|_| ())
    })
}

/// Deletes a draft softly: it disappears from the list and can be brought back with
/// [`undelete`]. A draft in the outbox cannot be deleted.
pub(crate) fn delete(store: &Store, draft_id: &str, hlc: &Hlc) -> Result<()> {
    store.write("deleting a draft", |tx| {
        let state: Option<String> = tx
            .query_row("SELECT state FROM drafts WHERE id = ?1 AND deleted_at IS NULL", [draft_id], |r| r.get(0))
            .optional()
            .map_err(Error::db("deleting a draft"))?;
        let state = DraftState::parse(&state.ok_or(Error::NotFound { what: "draft" })?);
        if state == DraftState::Submitting {
            return Err(locked(state));
        }
        tx.execute(
            "UPDATE drafts SET deleted_at = ?2, deleted_hlc = ?3 WHERE id = ?1",
            params![draft_id, now_millis(), hlc.to_string()],
        )
        .map_err(Error::db("deleting a draft"))?;
        super::backup::enqueue(tx, draft_id, None).map(|_| ())
    })
}

pub(crate) fn undelete(store: &Store, draft_id: &str, hlc: &Hlc) -> Result<()> {
    store.write("restoring a draft", |tx| {
        let n = tx
            .execute(
                "UPDATE drafts SET deleted_at = NULL, deleted_hlc = ?2 WHERE id = ?1 AND deleted_at IS NOT NULL",
                params![draft_id, hlc.to_string()],
            )
            .map_err(Error::db("restoring a draft"))?;
        if n == 0 {
            return Err(Error::NotFound { what: "deleted draft" });
        }
        super::backup::enqueue(tx, draft_id, None).map(|_| ())
    })
}

/// The values of an editable draft, read inside the submitting transaction.
pub(crate) fn values_in(tx: &Transaction<'_>, draft_id: &str) -> Result<BTreeMap<String, FieldValue>> {
    let mut stmt = tx
        .prepare_cached("SELECT field_id, value FROM draft_fields WHERE draft_id = ?1 AND value IS NOT NULL")
        .map_err(Error::db("reading a draft"))?;
    let rows = stmt
        .query_map([draft_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(Error::db("reading a draft"))?;
    let mut values = BTreeMap::new();
    for row in rows {
        let (field, json) = row.map_err(Error::db("reading a draft"))?;
        let value = serde_json::from_str(&json).map_err(|_| Error::BadData(format!("draft field {field} unreadable")))?;
        values.insert(field, value);
    }
    Ok(values)
}

pub(crate) fn set_state(tx: &Transaction<'_>, draft_id: &str, state: DraftState) -> Result<()> {
    tx.execute(
        "UPDATE drafts SET state = ?2, updated_at = ?3 WHERE id = ?1",
        params![draft_id, state.as_str(), now_millis()],
    )
    .map_err(Error::db("updating a draft"))?;
    Ok(())
}

/// Issues found before submission, so the shell can show them next to the fields.
pub type Issues = Vec<FieldIssue>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drafts::commands;
    use crate::drafts::hlc::HlcClock;
    use crate::outbox::{self, OutboxState};
    use crate::catalog::cache::ProcedureCache;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("core.db")).unwrap();
        (dir, s)
    }

    /// Caches a procedure `CT-TAM-TRU` with two fields, as a catalog sync would.
    fn catalog(s: &Store) {
        use crate::sync::wire::{Change, FeedPage};
        let data = serde_json::json!({
            "code": "CT-TAM-TRU", "kind": "procedure",
            "name": {"vi": "Đăng ký tạm trú", "en": "Temporary residence"}, "description": {"vi": "Mô tả", "en": "About"},
            "agency": {"code": "CONG-AN-PHUONG-XA", "name": {"vi": "Công an", "en": "Police"}},
            "fee_vnd": 0, "processing_days": 3,
            "fields": [
                {"id": "full_name", "label": {"vi": "Họ tên", "en": "Name"}, "type": "text", "required": true},
                {"id": "phone", "label": {"vi": "Điện thoại", "en": "Phone"}, "type": "phone", "required": false}
            ]
        });
        let change = Change { seq: 1, kind: "procedure.upsert".into(), key: "CT-TAM-TRU".into(), data };
        let page = FeedPage { feed: "public".into(), changes: vec![change], cursor: "1.1".into(), has_more: false };
        crate::sync::apply_page(s, &page, "public", false).unwrap();
    }

    fn draft(s: &Store) -> String {
        catalog(s);
        let id = new_draft_id();
        s.write("t", |tx| insert(tx, &id, "CT-TAM-TRU", "Tạm trú cho sinh viên")).unwrap();
        id
    }

    #[test]
    fn every_edit_is_saved_and_cleared_fields_disappear() {
        let (_d, s) = store();
        let clock = HlcClock::new("node-a").unwrap();
        let cache = ProcedureCache::default();
        let id = draft(&s);
        set_field(&s, &cache, &id, "full_name", Some(&FieldValue::Text("Nguyễn Văn An".into())), &clock.now(1)).unwrap();
        set_field(&s, &cache, &id, "phone", Some(&FieldValue::Text("0901234567".into())), &clock.now(2)).unwrap();
        set_field(&s, &cache, &id, "phone", None, &clock.now(3)).unwrap();
        let d = get(&s, &id).unwrap().unwrap();
        assert_eq!(d.values.len(), 1);
        assert_eq!(d.values["full_name"], FieldValue::Text("Nguyễn Văn An".into()));
        assert_eq!(d.summary.state, DraftState::Editing);
        assert!(matches!(set_field(&s, &cache, "nope", "x", None, &clock.now(4)), Err(Error::NotFound { .. })));
    }

    #[test]
    fn delete_hides_undo_restores_and_rename_sticks() {
        let (_d, s) = store();
        let id = draft(&s);
        let clock = HlcClock::new("node-a").unwrap();
        rename(&s, &id, "Cho An thuê phòng", &clock.now(1)).unwrap();
        delete(&s, &id, &clock.now(2)).unwrap();
        assert!(list(&s).unwrap().is_empty());
        assert!(get(&s, &id).unwrap().is_none());
        undelete(&s, &id, &clock.now(3)).unwrap();
        assert_eq!(list(&s).unwrap()[0].title, "Cho An thuê phòng");
        assert!(matches!(undelete(&s, &id, &clock.now(4)), Err(Error::NotFound { .. })));
        let backups = outbox::items(&s, Some(&id)).unwrap();
        assert_eq!(backups.len(), 1, "one unbuilt backup waits, whatever the number of changes");
        assert_eq!(backups[0].kind, crate::drafts::backup::BACKUP_KIND);
    }

    #[test]
    fn submitting_freezes_the_draft_and_queues_exactly_one_command() {
        let (_d, s) = store();
        let clock = HlcClock::new("node-a").unwrap();
        let cache = ProcedureCache::default();
        let id = draft(&s);
        set_field(&s, &cache, &id, "full_name", Some(&FieldValue::Text("An".into())), &clock.now(1)).unwrap();
        let key = s.write("submit", |tx| commands::submit(tx, &id)).unwrap();
        let items = outbox::items(&s, Some(&id)).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].idempotency_key, key);
        assert_eq!(items[0].state, OutboxState::Waiting);
        // Frozen: no edit, no second submission, no delete while it waits in the outbox.
        assert!(matches!(
            set_field(&s, &cache, &id, "full_name", Some(&FieldValue::Text("B".into())), &clock.now(2)),
            Err(Error::DraftLocked { .. })
        ));
        assert!(matches!(s.write("submit", |tx| commands::submit(tx, &id)), Err(Error::DraftLocked { .. })));
        assert!(matches!(delete(&s, &id, &clock.now(3)), Err(Error::DraftLocked { .. })));
        assert_eq!(outbox::items(&s, None).unwrap().len(), 1);
        assert_eq!(get(&s, &id).unwrap().unwrap().values["full_name"], FieldValue::Text("An".into()));
    }

    #[test]
    fn a_failed_submission_leaves_neither_command_nor_frozen_draft() {
        let (_d, s) = store();
        let id = draft(&s);
        // A damaged field value makes the submission fail half way: nothing of it stays.
        s.write("t", |tx| {
            tx.execute(
                "INSERT INTO draft_fields(draft_id, field_id, value, hlc, edited_at) VALUES (?1, 'x', 'not json', 'h', 0)",
                [&id],
            )
            .map_err(Error::db("t"))?;
            Ok(())
        })
        .unwrap();
        assert!(s.write("submit", |tx| commands::submit(tx, &id)).is_err());
        assert!(outbox::items(&s, None).unwrap().is_empty());
        assert_eq!(get(&s, &id).unwrap().unwrap().summary.state, DraftState::Editing);
    }

    #[test]
    fn a_command_caught_sending_by_a_crash_goes_back_to_waiting() {
        let (_d, s) = store();
        let id = draft(&s);
        s.write("submit", |tx| commands::submit(tx, &id)).unwrap();
        s.write("t", |tx| {
            tx.execute("UPDATE outbox SET state = 'sending'", []).map_err(Error::db("t"))?;
            Ok(())
        })
        .unwrap();
        outbox::recover(&s).unwrap();
        assert_eq!(outbox::items(&s, None).unwrap()[0].state, OutboxState::Waiting);
    }
}
