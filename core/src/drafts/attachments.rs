//! Attachments: files (photos of documents, PDFs) stored content-addressed on the phone and
//! uploaded to the server in resumable chunks through the one outbox.
//!
//! A file is checked by its content ([`content_type::check`]), never by its name, and streamed:
//! it is hashed (SHA-256) while it is copied into `<data_dir>/blobs/<2 hex>/<sha256 hex>`, so a
//! 50 MB photo never sits in memory. The same content is stored once however many drafts use it.
//! A file no draft uses and no queued command needs is deleted ([`collect_garbage`]).
//!
//! Submitting a draft queues one `blob.upload` command per file the server does not have yet,
//! before the `case.submit` command (same transaction): the outbox drains in order, and a
//! command that names a file waits for that file's upload. The upload asks the server how much
//! it already has, sends the rest in [`CHUNK_BYTES`] chunks, and records every acknowledged
//! chunk, so an app killed mid-upload resumes from the last finished chunk.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use super::content_type::{self, AttachmentProblem};
use super::store::{self as drafts_store, DraftState};
use super::validation::{FieldIssue, IssueCode, MAX_FILES_PER_ATTACHMENT};
use crate::catalog::model::{AttachmentRule, LocalizedText};
use crate::crypto::hex;
use crate::error::{Error, Result};
use crate::identity::Session;
use crate::outbox::{self, Rejection};
use crate::store::{now_millis, Store};
use crate::sync::client::Method;

/// The outbox kind of an upload; its subject is the file's SHA-256 (hex).
pub const UPLOAD_KIND: &str = "blob.upload";
/// `POST` offers a blob (answer: how much the server has); `PATCH <path>/<sha256>` sends a chunk.
pub const BLOBS_PATH: &str = "v1/blobs";
/// The size of every chunk but the last. The server accepts chunks up to this size.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// The header that says where a chunk starts.
pub const UPLOAD_OFFSET_HEADER: &str = "upload-offset";
/// The error code of a chunk sent at the wrong place; `details.offset` is where to go on.
pub const OFFSET_MISMATCH: &str = "offset_mismatch";

/// `POST /v1/blobs`: "I want to upload this file" (creates or resumes the upload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobOffer {
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
}

/// The server's answer to an offer or a chunk: the bytes it holds. `offset == size` after an
/// offer means the file is complete and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobOffset {
    pub offset: u64,
}

/// One file attached to a draft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub rule_id: String,
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
    pub added_at_ms: i64,
    /// How much of it the server has acknowledged.
    pub uploaded_bytes: u64,
}

/// Whether `s` is a SHA-256 in lowercase hex (the only names blobs have).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Serialises the moves of blob files against their rows: a file renamed into place for a new
/// attachment must not be removed by a garbage collection that saw its old, unused row.
static BLOB_FILES: Mutex<()> = Mutex::new(());

fn blob_files_lock() -> std::sync::MutexGuard<'static, ()> {
    BLOB_FILES.lock().unwrap_or_else(|p| p.into_inner())
}

/// `<data_dir>/blobs`, next to the database.
pub fn blob_dir(store: &Store) -> PathBuf {
    store.path().parent().unwrap_or_else(|| Path::new(".")).join("blobs")
}

/// Where the file with this hash lives.
pub fn blob_path(store: &Store, sha256: &str) -> PathBuf {
    blob_dir(store).join(&sha256[..2]).join(sha256)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::DataDirectory { path: path.to_path_buf(), source }
}


/// A file copied to a temporary name, hashed and checked, ready to be renamed into place.
struct Staged {
    temp: PathBuf,
    sha256: String,
    size: u64,
    media_type: &'static str,
}

impl Staged {
    fn discard(&self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Fills `buf` as far as the reader allows; returns how much was read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Checks the head against the rule (type by content, the announced size), then streams the
/// whole file into a temporary file under the blob directory, hashing while copying and
/// stopping as soon as it grows past the rule's limit.
fn stage(dir: &Path, mut reader: impl Read, announced_size: u64, rule: &AttachmentRule) -> Result<Staged> {
    let refused = |problem| Error::AttachmentRefused { problem };
    let mut head = vec![0u8; content_type::HEAD_LEN];
    let head_len = read_up_to(&mut reader, &mut head).map_err(io_error(dir))?;
    head.truncate(head_len);
    content_type::check(&head, announced_size.max(head_len as u64), rule).map_err(refused)?;
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let temp = dir.join(format!("tmp-{}", hex(&rand::random::<[u8; 8]>())));
    let staged = copy_hashing(&temp, &head, reader, rule.max_bytes);
    let (sha256, size) = match staged {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    // The size actually read decides (a file can grow between the check and the copy).
    match content_type::check(&head, size, rule) {
        Ok(media_type) => Ok(Staged { temp, sha256, size, media_type }),
        Err(problem) => {
            let _ = std::fs::remove_file(&temp);
            Err(refused(problem))
        }
    }
}

fn copy_hashing(temp: &Path, head: &[u8], mut reader: impl Read, max_bytes: u64) -> Result<(String, u64)> {
    let mut out = File::create(temp).map_err(io_error(temp))?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = head.len() as u64;
    digest.update(head);
    out.write_all(head).map_err(io_error(temp))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(temp)(e)),
        };
        size += n as u64;
        if size > max_bytes {
            return Err(Error::AttachmentRefused { problem: AttachmentProblem::TooLarge { max_bytes } });
        }
        digest.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_error(temp))?;
    }
    // Durable before it gets its real name: a crash never leaves a named, truncated blob.
    out.sync_all().map_err(io_error(temp))?;
    Ok((hex(digest.finish().as_ref()), size))
}

/// Renames a staged file to its content address (atomic; the same content may already be there,
/// and is then simply replaced by identical bytes) and makes the rename durable.
fn install(store: &Store, staged: &Staged) -> Result<()> {
    let path = blob_path(store, &staged.sha256);
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    if path.exists() {
        staged.discard();
    } else {
        std::fs::rename(&staged.temp, &path).map_err(io_error(&path))?;
    }
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn editable_state(tx: &Transaction<'_>, draft_id: &str) -> Result<()> {
    let state: Option<String> = tx
        .query_row("SELECT state FROM drafts WHERE id = ?1 AND deleted_at IS NULL", [draft_id], |r| r.get(0))
        .optional()
        .map_err(Error::db("attaching a file"))?;
    let state = match state.ok_or(Error::NotFound { what: "draft" })?.as_str() {
        "editing" => DraftState::Editing,
        "rejected" => DraftState::Rejected,
        "submitting" => DraftState::Submitting,
        _ => DraftState::Submitted,
    };
    if !state.is_editable() {
        return Err(drafts_store::locked(state));
    }
    Ok(())
}

fn too_many(rule: &AttachmentRule) -> Error {
    let issue = FieldIssue {
        field_id: rule.id.clone(),
        code: IssueCode::TooManyAttachments,
        message: LocalizedText {
            vi: format!("{}: chỉ được đính kèm tối đa {MAX_FILES_PER_ATTACHMENT} tệp.", rule.label.vi),
            en: format!("{}: at most {MAX_FILES_PER_ATTACHMENT} files.", rule.label.en),
        },
    };
    Error::DraftInvalid { count: 1, issues: vec![issue] }
}

/// Attaches a file read from `reader` under `rule` (one of the draft's procedure's rules).
/// `announced_size` is the file's length if known (a path's metadata), for an early refusal.
pub(crate) fn attach(
    store: &Store,
    draft_id: &str,
    rule: &AttachmentRule,
    reader: impl Read,
    announced_size: u64,
) -> Result<Attachment> {
    // Refuse a locked draft before copying megabytes.
    store.write("attaching a file", |tx| editable_state(tx, draft_id))?;
    let staged = stage(&blob_dir(store), reader, announced_size, rule)?;
    let _files = blob_files_lock();
    install(store, &staged)?;
    let now = now_millis();
    let recorded = store.write("attaching a file", |tx| {
        editable_state(tx, draft_id)?;
        let count: u32 = tx
            .query_row(
                "SELECT count(*) FROM draft_attachments WHERE draft_id = ?1 AND rule_id = ?2 AND sha256 <> ?3",
                params![draft_id, rule.id, staged.sha256],
                |r| r.get(0),
            )
            .map_err(Error::db("attaching a file"))?;
        if count >= MAX_FILES_PER_ATTACHMENT {
            return Err(too_many(rule));
        }
        tx.execute(
            "INSERT INTO blobs(sha256, size, media_type, uploaded_bytes) VALUES (?1, ?2, ?3, 0) \
             ON CONFLICT(sha256) DO NOTHING",
            params![staged.sha256, staged.size as i64, staged.media_type],
        )
        .map_err(Error::db("attaching a file"))?;
        tx.execute(
            "INSERT INTO draft_attachments(draft_id, rule_id, sha256, added_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
            params![draft_id, rule.id, staged.sha256, now],
        )
        .map_err(Error::db("attaching a file"))?;
        // Like a field edit: a refused draft being changed is being edited again.
        tx.execute("UPDATE drafts SET updated_at = ?2, state = 'editing' WHERE id = ?1", params![draft_id, now])
            .map_err(Error::db("attaching a file"))?;
        Ok(())
    });
    if let Err(e) = recorded {
        remove_if_unrecorded(store, &staged.sha256);
        return Err(e);
    }
    drop(_files);
    list(store, draft_id)?
        .into_iter()
        .find(|a| a.rule_id == rule.id && a.sha256 == staged.sha256)
        .ok_or(Error::NotFound { what: "attachment" })
}

/// Removes a file that was put in place but whose row was not written (the lock is held).
fn remove_if_unrecorded(store: &Store, sha256: &str) {
    let known: Result<bool> = store.read("checking a file", |c| {
        c.query_row("SELECT count(*) FROM blobs WHERE sha256 = ?1", [sha256], |r| r.get::<_, i64>(0)).map(|n| n > 0)
    });
    if let Ok(false) = known {
        let _ = std::fs::remove_file(blob_path(store, sha256));
    }
}

/// Attaches the file at `path`, streamed (never read whole into memory).
pub(crate) fn attach_path(store: &Store, draft_id: &str, rule: &AttachmentRule, path: &Path) -> Result<Attachment> {
    let file = File::open(path).map_err(io_error(path))?;
    let size = file.metadata().map_err(io_error(path))?.len();
    attach(store, draft_id, rule, std::io::BufReader::new(file), size)
}

/// Removes one file from a draft, then deletes files nothing uses any more.
pub(crate) fn detach(store: &Store, draft_id: &str, rule_id: &str, sha256: &str) -> Result<()> {
    store.write("removing an attachment", |tx| {
        editable_state(tx, draft_id)?;
        let n = tx
            .execute(
                "DELETE FROM draft_attachments WHERE draft_id = ?1 AND rule_id = ?2 AND sha256 = ?3",
                params![draft_id, rule_id, sha256],
            )
            .map_err(Error::db("removing an attachment"))?;
        if n == 0 {
            return Err(Error::NotFound { what: "attachment" });
        }
        tx.execute("UPDATE drafts SET updated_at = ?2, state = 'editing' WHERE id = ?1", params![draft_id, now_millis()])
            .map_err(Error::db("removing an attachment"))?;
        Ok(())
    })?;
    collect_garbage(store)?;
    Ok(())
}

/// The draft's files, by rule then by the time they were added.
pub fn list(store: &Store, draft_id: &str) -> Result<Vec<Attachment>> {
    store.read("listing attachments", |c| {
        let mut stmt = c.prepare_cached(
            "SELECT a.rule_id, a.sha256, b.size, b.media_type, a.added_at, b.uploaded_bytes \
             FROM draft_attachments a JOIN blobs b ON b.sha256 = a.sha256 \
             WHERE a.draft_id = ?1 ORDER BY a.rule_id, a.added_at, a.sha256",
        )?;
        let rows = stmt.query_map([draft_id], |r| {
            Ok(Attachment {
                rule_id: r.get(0)?,
                sha256: r.get(1)?,
                size: r.get::<_, i64>(2)?.max(0) as u64,
                media_type: r.get(3)?,
                added_at_ms: r.get(4)?,
                uploaded_bytes: r.get::<_, i64>(5)?.max(0) as u64,
            })
        })?;
        rows.collect()
    })
}

/// How many files each rule of the draft has (what validation counts).
pub fn counts(store: &Store, draft_id: &str) -> Result<BTreeMap<String, u32>> {
    store.read("counting attachments", |c| {
        let mut stmt =
            c.prepare_cached("SELECT rule_id, count(*) FROM draft_attachments WHERE draft_id = ?1 GROUP BY rule_id")?;
        let rows = stmt.query_map([draft_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
        rows.collect()
    })
}

/// Rule id -> the SHA-256 of each file, for the submission (inside its transaction).
pub(crate) fn for_submission(tx: &Transaction<'_>, draft_id: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut stmt = tx
        .prepare_cached("SELECT rule_id, sha256 FROM draft_attachments WHERE draft_id = ?1 ORDER BY rule_id, added_at, sha256")
        .map_err(Error::db("reading attachments"))?;
    let rows = stmt
        .query_map([draft_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(Error::db("reading attachments"))?;
    let mut by_rule: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        let (rule, sha) = row.map_err(Error::db("reading attachments"))?;
        by_rule.entry(rule).or_default().push(sha);
    }
    Ok(by_rule)
}

/// Queues an upload for each of the draft's files the server does not have yet and no queued
/// command is uploading already. Called in the submitting transaction, before `case.submit`.
pub(crate) fn enqueue_uploads(tx: &Transaction<'_>, draft_id: &str) -> Result<()> {
    let pending: Vec<BlobOffer> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT DISTINCT b.sha256, b.size, b.media_type FROM draft_attachments a \
                 JOIN blobs b ON b.sha256 = a.sha256 \
                 WHERE a.draft_id = ?1 AND (b.uploaded_at IS NULL \
                     OR b.uploaded_for IS NOT (SELECT account_id FROM session WHERE id = 1)) AND NOT EXISTS (\
                     SELECT 1 FROM outbox o WHERE o.kind = ?2 AND o.subject = b.sha256 \
                     AND o.state IN ('waiting', 'sending')) ORDER BY b.sha256",
            )
            .map_err(Error::db("queueing uploads"))?;
        let rows = stmt
            .query_map(params![draft_id, UPLOAD_KIND], |r| {
                Ok(BlobOffer { sha256: r.get(0)?, size: r.get::<_, i64>(1)?.max(0) as u64, media_type: r.get(2)? })
            })
            .map_err(Error::db("queueing uploads"))?;
        rows.collect::<rusqlite::Result<_>>().map_err(Error::db("queueing uploads"))?
    };
    for offer in pending {
        let payload = serde_json::to_value(&offer).map_err(|e| Error::BadData(e.to_string()))?;
        outbox::enqueue(tx, UPLOAD_KIND, &offer.sha256, &payload)?;
    }
    Ok(())
}

/// Deletes every blob (row and file) that no draft uses and no queued upload needs. Returns how
/// many went. Drafts deleted softly still hold theirs (undo); a draft deleted for good releases
/// them through the cascade on `draft_attachments`.
pub fn collect_garbage(store: &Store) -> Result<u32> {
    let _files = blob_files_lock();
    let unused: Vec<String> = store.write("deleting unused files", |tx| {
        let unused: Vec<String> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT sha256 FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM draft_attachments a WHERE a.sha256 = b.sha256) \
                     AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.kind = ?1 AND o.subject = b.sha256 \
                         AND o.state IN ('waiting', 'sending'))",
                )
                .map_err(Error::db("deleting unused files"))?;
            let rows = stmt.query_map([UPLOAD_KIND], |r| r.get(0)).map_err(Error::db("deleting unused files"))?;
            rows.collect::<rusqlite::Result<_>>().map_err(Error::db("deleting unused files"))?
        };
        for sha in &unused {
            tx.execute("DELETE FROM blobs WHERE sha256 = ?1", [sha]).map_err(Error::db("deleting unused files"))?;
        }
        Ok(unused)
    })?;
    remove_stale_temp_files(&blob_dir(store));
    // After the rows are gone: a crash here leaves a stray file, never a row without its file.
    for sha in &unused {
        if is_sha256_hex(sha) {
            if let Err(e) = std::fs::remove_file(blob_path(store, sha)) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("attachments: cannot delete an unused file: {e}");
                }
            }
        }
    }
    Ok(unused.len() as u32)
}

/// Copies left by an app killed while attaching (`tmp-*`, older than an hour: no attach takes
/// that long, so none is still being written).
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in entries.flatten() {
        let is_temp = entry.file_name().to_str().is_some_and(|n| n.starts_with("tmp-"));
        let stale = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < hour_ago);
        if is_temp && stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

// ---- the upload, sent by the outbox ----

pub(crate) type UploadFuture<'a> = Pin<Box<dyn Future<Output = Result<serde_json::Value>> + Send + 'a>>;

/// The outbox's sender for `blob.upload`.
pub(crate) fn send_upload<'a>(store: &'a Store, session: &'a Session<'a>, sha256: &'a str) -> UploadFuture<'a> {
    Box::pin(upload(store, session, sha256))
}

fn blob_row(store: &Store, sha256: &str) -> Result<Option<BlobOffer>> {
    store.read("reading a file's upload", |c| {
        c.query_row("SELECT size, media_type FROM blobs WHERE sha256 = ?1", [sha256], |r| {
            Ok(BlobOffer { sha256: sha256.to_string(), size: r.get::<_, i64>(0)?.max(0) as u64, media_type: r.get(1)? })
        })
        .optional()
    })
}

fn record_uploaded(store: &Store, sha256: &str, offset: u64) -> Result<()> {
    store.write("recording an uploaded chunk", |tx| {
        tx.execute("UPDATE blobs SET uploaded_bytes = ?2 WHERE sha256 = ?1", params![sha256, offset as i64])
            .map_err(Error::db("recording an uploaded chunk"))?;
        Ok(())
    })
}

/// Reads the chunk that starts at `offset` (at most [`CHUNK_BYTES`]).
fn read_chunk(path: &Path, offset: u64, size: u64) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(io_error(path))?;
    file.seek(SeekFrom::Start(offset)).map_err(io_error(path))?;
    let len = (size - offset).min(CHUNK_BYTES as u64) as usize;
    let mut buf = vec![0u8; len];
    file.read_exact(&mut buf).map_err(io_error(path))?;
    Ok(buf)
}

/// The server's offset in a 409 `offset_mismatch`, if that is what this error is.
fn mismatch_offset(e: &Error) -> Option<u64> {
    match e {
        Error::ServerRejected { status: 409, code, details, .. } if code == OFFSET_MISMATCH => {
            details.get("offset").and_then(serde_json::Value::as_u64)
        }
        _ => None,
    }
}

async fn upload(store: &Store, session: &Session<'_>, sha256: &str) -> Result<serde_json::Value> {
    let Some(blob) = blob_row(store, sha256)? else {
        return Err(Error::ServerRejected {
            status: 410,
            code: "file_gone".into(),
            message: "the file is no longer on this phone".into(),
            details: serde_json::Value::Null,
        });
    };
    let offer = serde_json::to_vec(&blob).map_err(|e| Error::BadData(e.to_string()))?;
    let BlobOffset { mut offset } =
        session.send_authorized(Method::POST, BLOBS_PATH, Some((offer, "application/json")), None).await?;
    let path = blob_path(store, sha256);
    let chunk_path = format!("{BLOBS_PATH}/{sha256}");
    // The server's word is the truth: it may hold more (an answer was lost) or less.
    record_uploaded(store, sha256, offset)?;
    while offset < blob.size {
        let chunk = read_chunk(&path, offset, blob.size)?;
        let headers = [(UPLOAD_OFFSET_HEADER, offset.to_string())];
        let sent: Result<BlobOffset> = session
            .send_authorized_with(Method::PATCH, &chunk_path, Some((chunk, "application/octet-stream")), None, &headers)
            .await;
        offset = match sent {
            Ok(ack) => ack.offset,
            Err(e) => match mismatch_offset(&e) {
                Some(server_offset) => server_offset,
                None => return Err(e),
            },
        };
        if offset > blob.size {
            return Err(Error::BadData("the server acknowledged more bytes than the file has".into()));
        }
        // After every acknowledged chunk: an app killed now resumes from here.
        record_uploaded(store, sha256, offset)?;
    }
    Ok(serde_json::json!({ "sha256": sha256, "size": blob.size }))
}

/// The server has the whole file, checked.
pub(crate) fn uploaded(tx: &Transaction<'_>, sha256: &str, _result: &serde_json::Value) -> Result<()> {
    tx.execute(
        "UPDATE blobs SET uploaded_bytes = size, uploaded_at = ?2, \
             uploaded_for = (SELECT account_id FROM session WHERE id = 1) WHERE sha256 = ?1",
        params![sha256, now_millis()],
    )
    .map_err(Error::db("recording an upload"))?;
    Ok(())
}

/// The server refused the file (type, size, hash): every draft waiting to be sent with it is
/// refused too, with a reason naming the attachment, and its queued submission is not sent.
pub(crate) fn upload_refused(tx: &Transaction<'_>, sha256: &str, rejection: &Rejection) -> Result<()> {
    let waiting: Vec<(String, String)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT DISTINCT a.draft_id, a.rule_id FROM draft_attachments a JOIN drafts d ON d.id = a.draft_id \
                 WHERE a.sha256 = ?1 AND d.state = 'submitting'",
            )
            .map_err(Error::db("recording a refused file"))?;
        let rows = stmt
            .query_map([sha256], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(Error::db("recording a refused file"))?;
        rows.collect::<rusqlite::Result<_>>().map_err(Error::db("recording a refused file"))?
    };
    for (draft_id, rule_id) in waiting {
        let reason = Rejection {
            code: rejection.code.clone(),
            message: format!("the server refused the file attached under {rule_id}: {}", rejection.message),
            details: serde_json::json!({ "rule_id": rule_id, "sha256": sha256, "server": rejection.details }),
        };
        let json = serde_json::to_string(&reason).map_err(|e| Error::BadData(e.to_string()))?;
        tx.execute(
            "UPDATE outbox SET state = 'rejected', rejection = ?2, updated_at = ?3 \
             WHERE subject = ?1 AND kind = ?4 AND state IN ('waiting', 'sending')",
            params![draft_id, json, now_millis(), super::wire::SUBMIT_KIND],
        )
        .map_err(Error::db("recording a refused file"))?;
        tx.execute("UPDATE drafts SET rejection = ?2 WHERE id = ?1", params![draft_id, json])
            .map_err(Error::db("recording a refused file"))?;
        drafts_store::set_state(tx, &draft_id, DraftState::Rejected)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drafts::commands;
    use crate::drafts::wire::{SubmitCase, SUBMIT_KIND};
    use crate::outbox::OutboxState;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("core.db")).unwrap();
        (dir, s)
    }

    fn draft(s: &Store) -> String {
        let id = drafts_store::new_draft_id();
        s.write("t", |tx| drafts_store::insert(tx, &id, "CT-TAM-TRU", "Tạm trú")).unwrap();
        id
    }

    fn rule(max_bytes: u64) -> AttachmentRule {
        AttachmentRule {
            id: "rental_contract".into(),
            label: LocalizedText { vi: "Hợp đồng thuê nhà".into(), en: "Rental contract".into() },
            required: true,
            accept: vec!["image/jpeg".into(), "application/pdf".into()],
            max_bytes,
        }
    }

    /// JPEG magic, then `len - 4` bytes that depend on `seed`.
    fn jpeg(len: usize, seed: u8) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
        b.extend((0..len.saturating_sub(4)).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
        b
    }

    fn sha(bytes: &[u8]) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
    }

    fn files_in_blob_dir(s: &Store) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(top) = std::fs::read_dir(blob_dir(s)) else { return out };
        for entry in top.flatten() {
            if entry.path().is_dir() {
                out.extend(std::fs::read_dir(entry.path()).unwrap().flatten().map(|e| e.path()));
            } else {
                out.push(entry.path());
            }
        }
        out
    }

    fn blob_rows(s: &Store) -> i64 {
        s.read("t", |c| c.query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))).unwrap()
    }

    #[test]
    fn attaching_bytes_and_a_path_stores_the_content_under_its_hash() {
        let (dir, s) = store();
        let id = draft(&s);
        let photo = jpeg(300_000, 1);
        let a = attach(&s, &id, &rule(10 << 20), &photo[..], photo.len() as u64).unwrap();
        assert_eq!((a.sha256.as_str(), a.size, a.media_type.as_str()), (sha(&photo).as_str(), 300_000, "image/jpeg"));
        assert_eq!(std::fs::read(blob_path(&s, &a.sha256)).unwrap(), photo);
        assert!(blob_path(&s, &a.sha256).starts_with(dir.path().join("blobs").join(&a.sha256[..2])));

        let pdf_path = dir.path().join("hop-dong.pdf");
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.extend(std::iter::repeat(b'x').take(100_000));
        std::fs::write(&pdf_path, &pdf).unwrap();
        let b = attach_path(&s, &id, &rule(10 << 20), &pdf_path).unwrap();
        assert_eq!((b.sha256.clone(), b.media_type.as_str()), (sha(&pdf), "application/pdf"));
        assert_eq!(list(&s, &id).unwrap().len(), 2);
        assert_eq!(counts(&s, &id).unwrap()["rental_contract"], 2);
        assert_eq!(files_in_blob_dir(&s).len(), 2, "no temporary file left behind");
    }

    #[test]
    fn an_exe_named_jpg_is_refused_by_its_content() {
        let (dir, s) = store();
        let id = draft(&s);
        let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
        exe.extend(std::iter::repeat(0u8).take(4096));
        let path = dir.path().join("giay-to.jpg");
        std::fs::write(&path, &exe).unwrap();
        match attach_path(&s, &id, &rule(10 << 20), &path) {
            Err(Error::AttachmentRefused { problem }) => {
                assert_eq!(problem, AttachmentProblem::UnknownType);
                assert!(!problem.user_message().vi.is_empty() && !problem.user_message().en.is_empty());
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(list(&s, &id).unwrap().is_empty());
        assert!(files_in_blob_dir(&s).is_empty());
        assert_eq!(blob_rows(&s), 0);
    }

    #[test]
    fn an_oversize_file_is_refused_before_and_while_copying() {
        let (_d, s) = store();
        let id = draft(&s);
        let big = jpeg(5_000, 2);
        let early = attach(&s, &id, &rule(4_096), &big[..], big.len() as u64);
        assert!(matches!(early, Err(Error::AttachmentRefused { problem: AttachmentProblem::TooLarge { max_bytes: 4_096 } })));
        // A stream that announces less than it holds is stopped as soon as it passes the limit.
        let late = attach(&s, &id, &rule(4_096), &big[..], 100);
        assert!(matches!(late, Err(Error::AttachmentRefused { problem: AttachmentProblem::TooLarge { .. } })));
        assert!(files_in_blob_dir(&s).is_empty(), "the partial copy is removed");
        assert!(matches!(
            attach(&s, &id, &rule(4_096), &[][..], 0),
            Err(Error::AttachmentRefused { problem: AttachmentProblem::Empty })
        ));
    }

    #[test]
    fn the_same_content_is_stored_once_and_detach_collects_unused_files() {
        let (_d, s) = store();
        let (one, two) = (draft(&s), draft(&s));
        let photo = jpeg(10_000, 3);
        let a = attach(&s, &one, &rule(1 << 20), &photo[..], photo.len() as u64).unwrap();
        attach(&s, &two, &rule(1 << 20), &photo[..], photo.len() as u64).unwrap();
        // Attaching it again to the same draft changes nothing.
        attach(&s, &one, &rule(1 << 20), &photo[..], photo.len() as u64).unwrap();
        assert_eq!((blob_rows(&s), files_in_blob_dir(&s).len()), (1, 1));
        assert_eq!(list(&s, &one).unwrap().len(), 1);

        detach(&s, &one, "rental_contract", &a.sha256).unwrap();
        assert!(blob_path(&s, &a.sha256).exists(), "the other draft still uses it");
        assert!(matches!(detach(&s, &one, "rental_contract", &a.sha256), Err(Error::NotFound { .. })));
        detach(&s, &two, "rental_contract", &a.sha256).unwrap();
        assert!(!blob_path(&s, &a.sha256).exists());
        assert_eq!(blob_rows(&s), 0);
    }

    #[test]
    fn a_draft_deleted_for_good_releases_its_files() {
        let (_d, s) = store();
        let id = draft(&s);
        let photo = jpeg(2_000, 4);
        let a = attach(&s, &id, &rule(1 << 20), &photo[..], photo.len() as u64).unwrap();
        drafts_store::delete(&s, &id, &crate::drafts::hlc::HlcClock::new("t").unwrap().now(1)).unwrap();
        assert_eq!(collect_garbage(&s).unwrap(), 0, "a softly deleted draft can come back");
        s.write("t", |tx| tx.execute("DELETE FROM drafts WHERE id = ?1", [&id]).map_err(Error::db("t"))).unwrap();
        assert_eq!(collect_garbage(&s).unwrap(), 1);
        assert!(!blob_path(&s, &a.sha256).exists());
    }

    #[test]
    fn at_most_the_maximum_number_of_files_per_rule_and_only_on_editable_drafts() {
        let (_d, s) = store();
        let id = draft(&s);
        for n in 0..MAX_FILES_PER_ATTACHMENT {
            let photo = jpeg(100, n as u8);
            attach(&s, &id, &rule(1 << 20), &photo[..], 100).unwrap();
        }
        let one_more = jpeg(100, 200);
        match attach(&s, &id, &rule(1 << 20), &one_more[..], 100) {
            Err(Error::DraftInvalid { issues, .. }) => assert_eq!(issues[0].code, IssueCode::TooManyAttachments),
            other => panic!("expected too many files, got {other:?}"),
        }
        assert_eq!(files_in_blob_dir(&s).len(), MAX_FILES_PER_ATTACHMENT as usize, "the refused file's copy goes");
        s.write("submit", |tx| commands::submit(tx, &id)).unwrap();
        let late = jpeg(100, 201);
        assert!(matches!(attach(&s, &id, &rule(1 << 20), &late[..], 100), Err(Error::DraftLocked { .. })));
        let first = list(&s, &id).unwrap()[0].sha256.clone();
        assert!(matches!(detach(&s, &id, "rental_contract", &first), Err(Error::DraftLocked { .. })));
    }

    #[test]
    fn submitting_queues_the_uploads_before_the_case_with_the_hashes_in_the_case() {
        let (_d, s) = store();
        let id = draft(&s);
        let (p1, p2) = (jpeg(1_000, 5), jpeg(2_000, 6));
        let a = attach(&s, &id, &rule(1 << 20), &p1[..], 1_000).unwrap();
        let b = attach(&s, &id, &rule(1 << 20), &p2[..], 2_000).unwrap();
        s.write("submit", |tx| commands::submit(tx, &id)).unwrap();
        let mut items = outbox::items(&s, None).unwrap();
        items.reverse(); // oldest first
        let kinds: Vec<&str> = items.iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(kinds, vec![UPLOAD_KIND, UPLOAD_KIND, SUBMIT_KIND]);
        let mut subjects = vec![items[0].subject.clone(), items[1].subject.clone()];
        subjects.sort();
        let mut want = vec![a.sha256.clone(), b.sha256.clone()];
        want.sort();
        assert_eq!(subjects, want);
        let payload: String = s
            .read("t", |c| c.query_row("SELECT payload FROM outbox WHERE kind = ?1", [SUBMIT_KIND], |r| r.get(0)))
            .unwrap();
        let submission: SubmitCase = serde_json::from_str(&payload).unwrap();
        assert_eq!(submission.attachments["rental_contract"].len(), 2);
        assert!(submission.attachments["rental_contract"].contains(&a.sha256));
    }

    #[test]
    fn garbage_collection_never_removes_a_file_a_queued_upload_needs() {
        let (_d, s) = store();
        let id = draft(&s);
        let photo = jpeg(3_000, 7);
        let a = attach(&s, &id, &rule(1 << 20), &photo[..], 3_000).unwrap();
        s.write("submit", |tx| commands::submit(tx, &id)).unwrap();
        // Even with the draft gone for good, the upload still waiting keeps its file.
        s.write("t", |tx| {
            tx.execute("DELETE FROM outbox WHERE kind = ?1", [SUBMIT_KIND]).map_err(Error::db("t"))?;
            tx.execute("DELETE FROM drafts WHERE id = ?1", [&id]).map_err(Error::db("t"))
        })
        .unwrap();
        assert_eq!(collect_garbage(&s).unwrap(), 0);
        assert!(blob_path(&s, &a.sha256).exists());
        s.write("t", |tx| tx.execute("UPDATE outbox SET state = 'sending'", []).map_err(Error::db("t"))).unwrap();
        assert_eq!(collect_garbage(&s).unwrap(), 0, "nor while it is being sent");
        s.write("t", |tx| tx.execute("UPDATE outbox SET state = 'sent'", []).map_err(Error::db("t"))).unwrap();
        assert_eq!(collect_garbage(&s).unwrap(), 1);
        assert!(!blob_path(&s, &a.sha256).exists());
    }

    #[test]
    fn a_refused_upload_refuses_the_draft_and_its_queued_case() {
        let (_d, s) = store();
        let id = draft(&s);
        let photo = jpeg(3_000, 8);
        let a = attach(&s, &id, &rule(1 << 20), &photo[..], 3_000).unwrap();
        s.write("submit", |tx| commands::submit(tx, &id)).unwrap();
        let refusal = Rejection { code: "type_mismatch".into(), message: "not a JPEG".into(), details: serde_json::Value::Null };
        s.write("refuse", |tx| upload_refused(tx, &a.sha256, &refusal)).unwrap();
        let d = drafts_store::get(&s, &id).unwrap().unwrap();
        assert_eq!(d.summary.state, DraftState::Rejected);
        let reason = d.rejection.unwrap();
        assert_eq!(reason.code, "type_mismatch");
        assert_eq!(reason.details["rule_id"], "rental_contract");
        let case = outbox::items(&s, Some(&id)).unwrap();
        assert_eq!(case[0].state, OutboxState::Rejected, "the case is not sent without its file");
    }

    #[test]
    fn sha256_names() {
        assert!(is_sha256_hex(&sha(b"x")));
        assert!(!is_sha256_hex("../../etc/passwd"));
        assert!(!is_sha256_hex(&sha(b"x").to_uppercase()));
    }
}
