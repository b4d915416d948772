//! Attachments on the server: `POST /v1/blobs` offers a file (creates or resumes its upload and
//! says how much the server holds), `PATCH /v1/blobs/{sha256}` with `Upload-Offset` appends one
//! chunk of at most [`CHUNK_BYTES`]. When the last byte arrives the server hashes the whole file
//! (its SHA-256 must be its name) and sniffs its type by content with the phone's own code
//! (`congdan_core::drafts::content_type`); a file failing either is thrown away. Only complete
//! files the resident uploaded themselves can be named in a submission ([`store::missing_for`]).

pub mod store;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use congdan_core::catalog::model::ACCEPTED_MEDIA_TYPES;
use congdan_core::drafts::attachments::{is_sha256_hex, BlobOffer, BlobOffset, OFFSET_MISMATCH, UPLOAD_OFFSET_HEADER};
use congdan_core::drafts::content_type;
use congdan_core::sync::wire::{ErrorBody, ErrorDetail};

pub use congdan_core::drafts::attachments::CHUNK_BYTES;

use crate::app::AppState;
use crate::error::ApiError;
use crate::identity::auth::Authenticated;
use store::{Append, Upload};

/// The largest file a resident may upload unless configured otherwise.
pub const DEFAULT_MAX_BLOB_BYTES: u64 = 20 * 1024 * 1024;

/// Unfinished uploads older than this are removed unless configured otherwise.
pub const DEFAULT_ABANDONED_UPLOAD_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// How often the server looks for abandoned uploads.
const CLEANUP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes uploads never finished within `older_than` of being offered: at start, then every
/// [`CLEANUP_INTERVAL`] while the runtime runs. Their chunks would otherwise stay forever.
pub fn spawn_cleanup(db: crate::db::Db, older_than: std::time::Duration) {
    tokio::spawn(async move {
        loop {
            let cutoff = crate::db::now_millis().saturating_sub(older_than.as_millis().min(i64::MAX as u128) as i64);
            match store::remove_abandoned(&db, cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "abandoned uploads removed"),
                Err(e) => tracing::warn!("removing abandoned uploads failed: {e}"),
            }
            tokio::time::sleep(CLEANUP_INTERVAL).await;
        }
    });
}

fn offset_response(offset: i64) -> Response {
    let body = serde_json::to_string(&BlobOffset { offset: offset.max(0) as u64 }).unwrap_or_default();
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// 409 with the offset to go on from in `details`, so the phone resumes without asking again.
fn offset_mismatch(current: i64) -> Response {
    let body = serde_json::to_string(&ErrorBody {
        error: ErrorDetail {
            code: OFFSET_MISMATCH.into(),
            message: "the chunk does not start where the upload stands".into(),
            message_vi: Some("Phần tệp gửi lên không đúng vị trí.".into()),
            details: Some(serde_json::json!({ "offset": current })),
        },
    })
    .unwrap_or_default();
    (StatusCode::CONFLICT, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn unprocessable(code: &'static str, message: &str, message_vi: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message, message_vi)
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "blob_too_large",
        format!("files may be at most {max} bytes"),
        "Tệp quá lớn.",
    )
}

fn checked_name(sha256: &str) -> Result<(), ApiError> {
    if is_sha256_hex(sha256) {
        Ok(())
    } else {
        Err(unprocessable("invalid_sha256", "a blob is named by its SHA-256 in lowercase hex", "Mã tệp không hợp lệ."))
    }
}

/// `POST /v1/blobs`: creates or resumes an upload; answers how many bytes the server holds.
/// `offset == size` means the file is complete and checked.
pub async fn offer(State(state): State<AppState>, caller: Authenticated, body: Bytes) -> Result<Response, ApiError> {
    let offer: BlobOffer = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", e.to_string(), "Dữ liệu gửi lên không đúng mẫu.")
    })?;
    checked_name(&offer.sha256)?;
    if !ACCEPTED_MEDIA_TYPES.contains(&offer.media_type.as_str()) {
        return Err(unprocessable(
            "unsupported_media_type",
            "files must be JPEG, PNG, HEIC or PDF",
            "Chỉ nhận ảnh (JPG, PNG, HEIC) hoặc tệp PDF.",
        ));
    }
    if offer.size == 0 || offer.size > state.max_blob_bytes {
        return Err(too_large(state.max_blob_bytes));
    }
    let size = offer.size as i64;
    let upload = store::offer(&state.db, &caller.account_id, &offer.sha256, size, &offer.media_type).await?;
    if upload.complete && (upload.size != size || upload.media_type != offer.media_type) {
        return Err(unprocessable(
            "blob_conflict",
            "this file was uploaded before with another size or type",
            "Tệp này đã được gửi với thông tin khác.",
        ));
    }
    if !upload.complete && upload.received == upload.size {
        // Every byte arrived but the check did not finish (an instance stopped): finish it now.
        finish(&state, &caller.account_id, &offer.sha256, &upload).await?;
    }
    Ok(offset_response(upload.received))
}

/// `PATCH /v1/blobs/{sha256}`: appends one chunk at `Upload-Offset`; answers the new offset.
pub async fn append(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    checked_name(&sha256)?;
    let chunk = body.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "chunk_too_large",
            format!("a chunk is at most {CHUNK_BYTES} bytes"),
            "Phần tệp gửi lên quá lớn.",
        )
    })?;
    if chunk.is_empty() || chunk.len() > CHUNK_BYTES {
        return Err(ApiError::bad_request("bad_chunk", format!("a chunk is 1 to {CHUNK_BYTES} bytes")));
    }
    let offset = headers
        .get(UPLOAD_OFFSET_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&o| o <= i64::MAX as u64)
        .ok_or_else(|| ApiError::bad_request("upload_offset_missing", "an Upload-Offset header (bytes) is required"))?
        as i64;
    match store::append(&state.db, &caller.account_id, &sha256, offset, chunk.to_vec()).await? {
        Append::Missing => Err(ApiError::not_found("upload_not_found", "offer the file with POST /v1/blobs first")),
        Append::OffsetMismatch(current) => Ok(offset_mismatch(current)),
        Append::TooLong => Err(too_large_than_declared()),
        Append::Stored(received) => {
            let upload = store::get(&state.db, &caller.account_id, &sha256)
                .await?
                .ok_or_else(|| ApiError::not_found("upload_not_found", "the upload is gone"))?;
            if !upload.complete && upload.received == upload.size {
                finish(&state, &caller.account_id, &sha256, &upload).await?;
            }
            Ok(offset_response(received))
        }
    }
}

fn too_large_than_declared() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "blob_too_large",
        "the chunk goes past the size declared for the file",
        "Tệp lớn hơn kích thước đã khai báo.",
    )
}

/// Checks a fully received upload, one chunk at a time: its SHA-256 must be its name and its
/// content the declared type. A failing file is thrown away (the phone must not retry it).
async fn finish(state: &AppState, account: &str, sha256: &str, upload: &Upload) -> Result<(), ApiError> {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut head: Vec<u8> = Vec::with_capacity(content_type::HEAD_LEN);
    let mut at = 0i64;
    while at < upload.size {
        let Some(chunk) = store::chunk_at(&state.db, account, sha256, at).await? else {
            store::discard(&state.db, account, sha256).await?;
            return Err(ApiError::internal("an upload lost a chunk; discarded"));
        };
        if head.len() < content_type::HEAD_LEN {
            let take = (content_type::HEAD_LEN - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        digest.update(&chunk);
        at += chunk.len() as i64;
    }
    let actual = congdan_core::crypto::hex(digest.finish().as_ref());
    if actual != sha256 {
        store::discard(&state.db, account, sha256).await?;
        return Err(unprocessable(
            "hash_mismatch",
            "the file's SHA-256 is not its name; the upload was discarded",
            "Tệp nhận được bị hỏng. Vui lòng gửi lại.",
        ));
    }
    if content_type::sniff(&head) != Some(upload.media_type.as_str()) {
        store::discard(&state.db, account, sha256).await?;
        return Err(unprocessable(
            "type_mismatch",
            "the file's content is not of its declared type; the upload was discarded",
            "Nội dung tệp không đúng loại đã khai báo (ảnh JPG, PNG, HEIC hoặc PDF).",
        ));
    }
    store::mark_complete(&state.db, account, sha256).await?;
    tracing::info!(bytes = upload.size, "attachment received");
    Ok(())
}

/// The refusal of a submission naming files that are not complete uploads of the caller (a
/// `422 attachment_missing` body listing them), or `None` when every file is there.
pub async fn refusal_for_missing(
    state: &AppState,
    account: &str,
    attachments: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<Option<String>, ApiError> {
    let named: Vec<String> = attachments.values().flatten().cloned().collect();
    if named.iter().any(|sha| !is_sha256_hex(sha)) {
        return Ok(Some(attachment_missing(&named)));
    }
    let missing = store::missing_for(&state.db, account, named).await?;
    Ok((!missing.is_empty()).then(|| attachment_missing(&missing)))
}

fn attachment_missing(hashes: &[String]) -> String {
    let shown: Vec<&String> = hashes.iter().filter(|h| is_sha256_hex(h)).collect();
    serde_json::to_string(&ErrorBody {
        error: ErrorDetail {
            code: "attachment_missing".into(),
            message: "the submission names files that were not uploaded (complete) by this resident".into(),
            message_vi: Some("Hồ sơ có tệp đính kèm chưa được tải lên đầy đủ.".into()),
            details: Some(serde_json::json!({ "missing": shown })),
        },
    })
    .unwrap_or_default()
}

// ---- Downloads ----

/// Bytes read from the database per piece of a download (at most one stored chunk).
const PIECE_LIMIT: usize = CHUNK_BYTES;

fn blob_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "blob_not_found", "no such file", "Không tìm thấy tệp.")
}

/// `GET /v1/blobs/{sha256}`: a resident downloads one of their own complete files. Anyone
/// else's answers 404, exactly like a file that does not exist.
pub async fn download(
    State(state): State<AppState>,
    caller: Authenticated,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    checked_name(&sha256)?;
    serve_file(&state, &caller.account_id, &sha256, &headers).await
}

/// The part a `Range: bytes=a-b` / `bytes=a-` header asks for, as `[from, to)`. `None` for the
/// whole file (no header, or a form not supported here such as several ranges, which HTTP
/// lets a server ignore); `Err` when the start lies past the end (416).
fn requested_range(headers: &HeaderMap, size: i64) -> Result<Option<(i64, i64)>, ()> {
    let Some(spec) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let Some((from, to)) = spec.trim().strip_prefix("bytes=").and_then(|r| r.split_once('-')) else { return Ok(None) };
    let Ok(from) = from.trim().parse::<i64>() else { return Ok(None) };
    let to = match to.trim() {
        "" => size,
        last => match last.parse::<i64>() {
            Ok(last) if last >= from => last.saturating_add(1).min(size),
            _ => return Ok(None),
        },
    };
    if from >= size {
        return Err(());
    }
    Ok(Some((from, to)))
}

/// Streams the complete upload `sha256` of `owner`, one stored chunk at a time (never the
/// whole file in memory). A `Range` answers `206` with that part, so a phone can fetch a
/// large file in pieces and resume.
pub async fn serve_file(state: &AppState, owner: &str, sha256: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let upload = store::get(&state.db, owner, sha256).await?.filter(|u| u.complete).ok_or_else(blob_not_found)?;
    let (status, from, to) = match requested_range(headers, upload.size) {
        Ok(None) => (StatusCode::OK, 0, upload.size),
        Ok(Some((from, to))) => (StatusCode::PARTIAL_CONTENT, from, to),
        Err(()) => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                "the range starts past the end of the file",
                "Vị trí yêu cầu nằm ngoài tệp.",
            )
            .into_response();
            if let Ok(v) = header::HeaderValue::from_str(&format!("bytes */{}", upload.size)) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let (db, owner, sha) = (state.db.clone(), owner.to_string(), sha256.to_string());
    let pieces = futures_util::stream::try_unfold(from, move |at| {
        let (db, owner, sha) = (db.clone(), owner.clone(), sha.clone());
        async move {
            if at >= to {
                return Ok(None);
            }
            let (start, data) = store::chunk_covering(&db, &owner, &sha, at)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .ok_or_else(|| std::io::Error::other("a stored file lost a chunk"))?;
            let skip = (at - start) as usize;
            let take = ((to - at) as usize).min(data.len().saturating_sub(skip)).min(PIECE_LIMIT);
            if take == 0 {
                return Err(std::io::Error::other("a stored file has a gap"));
            }
            let piece = Bytes::copy_from_slice(&data[skip..skip + take]);
            Ok::<_, std::io::Error>(Some((piece, at + take as i64)))
        }
    });
    let mut response = Response::new(axum::body::Body::from_stream(pieces));
    *response.status_mut() = status;
    let h = response.headers_mut();
    let value = |s: String| header::HeaderValue::from_str(&s).map_err(ApiError::internal);
    h.insert(header::CONTENT_TYPE, value(upload.media_type.clone())?);
    h.insert(header::CONTENT_LENGTH, value((to - from).to_string())?);
    h.insert(header::ETAG, value(format!("\"{sha256}\""))?);
    h.insert(header::ACCEPT_RANGES, header::HeaderValue::from_static("bytes"));
    // A resident's document: never cached by anything in between, never run as something else.
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("private, no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_DISPOSITION, value(format!("attachment; filename=\"{sha256}\""))?);
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, value(format!("bytes {from}-{}/{}", to - 1, upload.size))?);
    }
    Ok(response)
}
