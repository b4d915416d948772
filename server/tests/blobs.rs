//! Attachment uploads on both databases: chunks, resuming, the checks when the last byte
//! arrives (hash, type by content), the size limit, and submissions naming only the resident's
//! own complete files.

mod common;

use common::identity::{error_code, http, login, Session};
use common::Backend;
use congdan_core::drafts::wire::CaseReceipt;
use congdan_server::blobs::{store, CHUNK_BYTES};
use serde_json::{json, Value};

fn sha_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// JPEG magic, then bytes that depend on `seed`.
fn jpeg(len: usize, seed: u8) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.extend((0..len - 4).map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed)));
    b
}

async fn offer(s: &mut Session, sha: &str, size: usize, media_type: &str) -> reqwest::Response {
    s.request("POST", "/v1/blobs", Some(&json!({"sha256": sha, "size": size, "media_type": media_type}))).await
}

async fn offset_of(r: reqwest::Response) -> u64 {
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["offset"].as_u64().unwrap()
}

/// `PATCH /v1/blobs/{sha}` with a raw chunk, a DPoP proof and `Upload-Offset`.
async fn patch(s: &mut Session, sha: &str, offset: usize, chunk: &[u8]) -> reqwest::Response {
    let url = format!("{}/v1/blobs/{sha}", s.base);
    for attempt in 0..2 {
        let token = s.tokens.access_token.clone();
        let proof = s.device.proof("PATCH", &url, Some(&token), s.nonce.as_deref());
        let r = http()
            .patch(&url)
            .header("DPoP", proof)
            .header("Authorization", format!("DPoP {token}"))
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/octet-stream")
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        if let Some(n) = r.headers().get("dpop-nonce") {
            s.nonce = Some(n.to_str().unwrap().to_string());
        }
        if r.status() == 401 && attempt == 0 {
            continue;
        }
        return r;
    }
    unreachable!()
}

/// Offers and sends a whole file; returns the last answer.
async fn upload(s: &mut Session, sha: &str, bytes: &[u8], media_type: &str) -> reqwest::Response {
    let mut at = offset_of(offer(s, sha, bytes.len(), media_type).await).await as usize;
    loop {
        let end = (at + CHUNK_BYTES).min(bytes.len());
        let r = patch(s, sha, at, &bytes[at..end]).await;
        if r.status() != 200 || end == bytes.len() {
            return r;
        }
        at = offset_of(r).await as usize;
    }
}

/// The stored bytes of an upload, chunk after chunk.
async fn reassembled(db: &congdan_server::db::Db, account: &str, sha: &str) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = store::chunk_at(db, account, sha, out.len() as i64).await.unwrap() {
        out.extend(chunk);
    }
    out
}

async fn account_id(s: &mut Session) -> String {
    let me: Value = s.request("GET", "/v1/me", None).await.json().await.unwrap();
    me["account_id"].as_str().unwrap().to_string()
}

on_both_backends!(a_file_goes_up_in_chunks_and_resumes_where_the_server_stands, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let photo = jpeg(600 * 1024, 1);
    let sha = sha_hex(&photo);

    assert_eq!(offset_of(offer(&mut lan, &sha, photo.len(), "image/jpeg").await).await, 0);
    let r = patch(&mut lan, &sha, 0, &photo[..CHUNK_BYTES]).await;
    assert_eq!(offset_of(r).await, CHUNK_BYTES as u64);
    // The phone was killed: it asks again and goes on from the last acknowledged chunk.
    assert_eq!(offset_of(offer(&mut lan, &sha, photo.len(), "image/jpeg").await).await, CHUNK_BYTES as u64);
    // A chunk at the wrong place: 409 with where to go on.
    let r = patch(&mut lan, &sha, 0, &photo[..CHUNK_BYTES]).await;
    assert_eq!(r.status(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "offset_mismatch");
    assert_eq!(v["error"]["details"]["offset"], CHUNK_BYTES as u64);
    // A chunk larger than allowed is refused by the route's own body limit.
    let r = patch(&mut lan, &sha, CHUNK_BYTES, &photo[CHUNK_BYTES..CHUNK_BYTES * 2 + 1]).await;
    assert_eq!(r.status(), 413);
    let r = patch(&mut lan, &sha, CHUNK_BYTES, &photo[CHUNK_BYTES..CHUNK_BYTES * 2]).await;
    assert_eq!(offset_of(r).await, 2 * CHUNK_BYTES as u64);
    let r = patch(&mut lan, &sha, 2 * CHUNK_BYTES, &photo[2 * CHUNK_BYTES..]).await;
    assert_eq!(offset_of(r).await, photo.len() as u64);
    // Complete: offering it again answers the full size; the bytes are intact.
    assert_eq!(offset_of(offer(&mut lan, &sha, photo.len(), "image/jpeg").await).await, photo.len() as u64);
    let account = account_id(&mut lan).await;
    let stored = reassembled(&server.state.db, &account, &sha).await;
    assert_eq!(sha_hex(&stored), sha);
    assert!(store::get(&server.state.db, &account, &sha).await.unwrap().unwrap().complete);
    // No chunk after the end.
    let r = patch(&mut lan, &sha, photo.len(), b"x").await;
    assert_eq!(r.status(), 409);
    server.shutdown().await;
});

on_both_backends!(a_file_that_is_not_what_it_says_is_thrown_away, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let account = account_id(&mut lan).await;

    // Named by another file's hash: refused when the last byte arrives, and discarded.
    let photo = jpeg(300 * 1024, 2);
    let wrong = sha_hex(b"another file");
    let r = upload(&mut lan, &wrong, &photo, "image/jpeg").await;
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "hash_mismatch");
    assert!(store::get(&server.state.db, &account, &wrong).await.unwrap().is_none());
    assert!(reassembled(&server.state.db, &account, &wrong).await.is_empty());
    assert_eq!(offset_of(offer(&mut lan, &wrong, photo.len(), "image/jpeg").await).await, 0, "starts again");

    // A Windows program declared as a JPEG photo.
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".to_vec();
    exe.extend(std::iter::repeat(0x41u8).take(10_000));
    let exe_sha = sha_hex(&exe);
    let r = upload(&mut lan, &exe_sha, &exe, "image/jpeg").await;
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "type_mismatch");
    assert!(store::get(&server.state.db, &account, &exe_sha).await.unwrap().is_none());
    // A PDF declared as a JPEG is refused the same way.
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend(std::iter::repeat(b'x').take(1_000));
    let r = upload(&mut lan, &sha_hex(&pdf), &pdf, "image/jpeg").await;
    assert_eq!(error_code(r).await, "type_mismatch");
    server.shutdown().await;
});

on_both_backends!(oversize_and_malformed_offers_and_chunks_are_refused, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let sha = sha_hex(b"big");
    let r = offer(&mut lan, &sha, 20 * 1024 * 1024 + 1, "image/jpeg").await;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "blob_too_large");
    let r = offer(&mut lan, &sha, 0, "image/jpeg").await;
    assert_eq!(r.status(), 413);
    let r = offer(&mut lan, &sha, 10, "application/x-msdownload").await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (422, "unsupported_media_type"));
    let r = offer(&mut lan, "../../etc/passwd", 10, "image/jpeg").await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (422, "invalid_sha256"));
    // A chunk for nothing offered, and a chunk past the declared size.
    let r = patch(&mut lan, &sha, 0, b"abc").await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (404, "upload_not_found"));
    assert_eq!(offset_of(offer(&mut lan, &sha, 4, "image/jpeg").await).await, 0);
    let r = patch(&mut lan, &sha, 0, b"\xFF\xD8\xFF\xE0\x00").await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (413, "blob_too_large"));
    // Without a session nothing is accepted.
    let r = http().post(format!("{}/v1/blobs", server.url())).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    server.shutdown().await;
});

fn report_with_photos(draft: &str, photos: &[&str]) -> Value {
    json!({
        "draft_id": draft,
        "procedure_code": "PA-1022",
        "values": {
            "category": {"type": "choice", "value": ["flooding"]},
            "location": {"type": "location", "value": {"lat": 10.7769, "lon": 106.7009}},
            "description": {"type": "text", "value": "Nước ngập tới đầu gối, ảnh đính kèm."}
        },
        "attachments": {"photos": photos}
    })
}

on_both_backends!(a_case_names_only_its_residents_complete_files, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut minh = login(&base, "minh").await;
    let photo = jpeg(100 * 1024, 3);
    let sha = sha_hex(&photo);
    let r = upload(&mut lan, &sha, &photo, "image/jpeg").await;
    assert_eq!(offset_of(r).await, photo.len() as u64);

    // Another resident cannot use Lan's file, even knowing its hash.
    let r = minh.command("/v1/cases", &report_with_photos("m-1", &[&sha]), "k-minh").await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "attachment_missing");
    assert_eq!(v["error"]["details"]["missing"][0], sha.as_str());
    // Nor a file of one's own still being uploaded.
    let half = jpeg(300 * 1024, 4);
    let half_sha = sha_hex(&half);
    offset_of(offer(&mut lan, &half_sha, half.len(), "image/jpeg").await).await;
    offset_of(patch(&mut lan, &half_sha, 0, &half[..CHUNK_BYTES]).await).await;
    let r = lan.command("/v1/cases", &report_with_photos("l-0", &[&sha, &half_sha]), "k-half").await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (422, "attachment_missing"));

    // Lan's own complete file: the case is made and remembers it.
    let r = lan.command("/v1/cases", &report_with_photos("l-1", &[&sha]), "k-lan").await;
    assert_eq!(r.status(), 201);
    let receipt: CaseReceipt = r.json().await.unwrap();
    let files = store::case_attachments(&server.state.db, &receipt.case_id).await.unwrap();
    assert_eq!(files, vec![("photos".to_string(), sha.clone())]);
    server.shutdown().await;
});

/// `GET path` with a DPoP proof and an optional `Range` header.
async fn download(s: &mut Session, path: &str, range: Option<&str>) -> reqwest::Response {
    let url = format!("{}{path}", s.base);
    for attempt in 0..2 {
        let token = s.tokens.access_token.clone();
        let proof = s.device.proof("GET", &url, Some(&token), s.nonce.as_deref());
        let mut req = http().get(&url).header("DPoP", proof).header("Authorization", format!("DPoP {token}"));
        if let Some(range) = range {
            req = req.header("Range", range);
        }
        let r = req.send().await.unwrap();
        if let Some(n) = r.headers().get("dpop-nonce") {
            s.nonce = Some(n.to_str().unwrap().to_string());
        }
        if r.status() == 401 && attempt == 0 {
            continue;
        }
        return r;
    }
    unreachable!()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

on_both_backends!(a_resident_downloads_only_their_own_complete_files, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut minh = login(&base, "minh").await;
    // Several chunks, the last one short: the download walks them all.
    let photo = jpeg(2 * CHUNK_BYTES + 1000, 7);
    let sha = sha_hex(&photo);
    offset_of(upload(&mut lan, &sha, &photo, "image/jpeg").await).await;
    let path = format!("/v1/blobs/{sha}");

    let r = download(&mut lan, &path, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "image/jpeg");
    assert_eq!(header(&r, "content-length"), photo.len().to_string());
    assert_eq!(header(&r, "cache-control"), "private, no-store");
    assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    assert_eq!(header(&r, "etag"), format!("\"{sha}\""));
    assert_eq!(r.bytes().await.unwrap().to_vec(), photo, "the same bytes");

    // A part across a chunk boundary, and the rest from an offset.
    let (from, to) = (CHUNK_BYTES - 10, CHUNK_BYTES + 20);
    let r = download(&mut lan, &path, Some(&format!("bytes={from}-{to}"))).await;
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), format!("bytes {from}-{to}/{}", photo.len()));
    assert_eq!(r.bytes().await.unwrap().to_vec(), photo[from..=to].to_vec());
    let r = download(&mut lan, &path, Some(&format!("bytes={}-", 2 * CHUNK_BYTES + 500))).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().to_vec(), photo[2 * CHUNK_BYTES + 500..].to_vec());
    let r = download(&mut lan, &path, Some(&format!("bytes={}-", photo.len()))).await;
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), format!("bytes */{}", photo.len()));

    // Someone else's file: 404, like a file that does not exist; so is one still uploading.
    let r = download(&mut minh, &path, None).await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (404, "blob_not_found"));
    let unknown = sha_hex(b"nothing");
    let r = download(&mut lan, &format!("/v1/blobs/{unknown}"), None).await;
    assert_eq!(r.status(), 404);
    let half = jpeg(CHUNK_BYTES + 10, 8);
    let half_sha = sha_hex(&half);
    offset_of(offer(&mut lan, &half_sha, half.len(), "image/jpeg").await).await;
    offset_of(patch(&mut lan, &half_sha, 0, &half[..CHUNK_BYTES]).await).await;
    let r = download(&mut lan, &format!("/v1/blobs/{half_sha}"), None).await;
    assert_eq!(r.status(), 404);
    let r = download(&mut lan, "/v1/blobs/not-a-hash", None).await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (422, "invalid_sha256"));
    let r = http().get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    server.shutdown().await;
});

on_both_backends!(an_agency_sees_and_downloads_the_files_of_its_own_cases_only, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let base = server.url();
    let mut lan = login(&base, "lan").await;
    let mut hotline = login(&base, "hotline").await;
    let mut staff = login(&base, "staff").await;
    let photo = jpeg(CHUNK_BYTES + 4000, 9);
    let sha = sha_hex(&photo);
    offset_of(upload(&mut lan, &sha, &photo, "image/jpeg").await).await;
    // Lan's other file, on no case.
    let other = jpeg(5000, 10);
    let other_sha = sha_hex(&other);
    offset_of(upload(&mut lan, &other_sha, &other, "image/jpeg").await).await;
    let r = lan.command("/v1/cases", &report_with_photos("l-9", &[&sha]), "k-files").await;
    assert_eq!(r.status(), 201);
    let receipt: CaseReceipt = r.json().await.unwrap();

    // The hotline's case view lists the file with its type and size.
    let r = hotline.request("GET", &format!("/v1/agency/cases/{}", receipt.case_id), None).await;
    assert_eq!(r.status(), 200);
    let view: Value = r.json().await.unwrap();
    assert_eq!(
        view["attachments"],
        json!([{"field": "photos", "sha256": sha, "media_type": "image/jpeg", "size": photo.len()}])
    );

    let path = format!("/v1/agency/cases/{}/attachments/{sha}", receipt.case_id);
    let r = download(&mut hotline, &path, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "image/jpeg");
    let got = r.bytes().await.unwrap().to_vec();
    assert_eq!(sha_hex(&got), sha, "the agency gets the resident's file intact");
    let r = download(&mut hotline, &path, Some("bytes=0-3")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().to_vec(), photo[..4].to_vec());

    // A file of the same resident that the case does not name: 404.
    let r = download(&mut hotline, &format!("/v1/agency/cases/{}/attachments/{other_sha}", receipt.case_id), None).await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (404, "blob_not_found"));
    // Another agency: 404 for the case, whatever the file.
    let r = download(&mut staff, &path, None).await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (404, "case_not_found"));
    // The resident's own download route does not serve the agency: 404, it is not theirs.
    let r = download(&mut hotline, &format!("/v1/blobs/{sha}"), None).await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (404, "blob_not_found"));
    // A resident, even the one who sent it, is no agency (they use GET /v1/blobs/{sha}).
    let r = download(&mut lan, &path, None).await;
    assert_eq!((r.status().as_u16(), error_code(r).await.as_str()), (403, "forbidden"));
    server.shutdown().await;
});

on_both_backends!(uploads_never_finished_are_removed_after_their_age, |b: Backend| async move {
    let server = common::start(&b.url).await;
    let mut lan = login(&server.url(), "lan").await;
    let account = account_id(&mut lan).await;
    let done = jpeg(5000, 11);
    let done_sha = sha_hex(&done);
    offset_of(upload(&mut lan, &done_sha, &done, "image/jpeg").await).await;
    let half = jpeg(CHUNK_BYTES + 10, 12);
    let half_sha = sha_hex(&half);
    offset_of(offer(&mut lan, &half_sha, half.len(), "image/jpeg").await).await;
    offset_of(patch(&mut lan, &half_sha, 0, &half[..CHUNK_BYTES]).await).await;
    let db = &server.state.db;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;

    // Younger than the age: kept, and the phone resumes where it stood.
    assert_eq!(store::remove_abandoned(db, now - 3_600_000).await.unwrap(), 0);
    assert_eq!(offset_of(offer(&mut lan, &half_sha, half.len(), "image/jpeg").await).await, CHUNK_BYTES as u64);
    // Older: the unfinished upload and its chunks go; the complete file stays.
    assert_eq!(store::remove_abandoned(db, now + 1000).await.unwrap(), 1);
    assert_eq!(store::get(db, &account, &half_sha).await.unwrap(), None);
    assert_eq!(store::chunk_at(db, &account, &half_sha, 0).await.unwrap(), None);
    assert!(store::get(db, &account, &done_sha).await.unwrap().unwrap().complete);
    assert_eq!(reassembled(db, &account, &done_sha).await, done);
    // The phone that comes back offers the file again and starts from zero.
    assert_eq!(offset_of(offer(&mut lan, &half_sha, half.len(), "image/jpeg").await).await, 0);
    server.shutdown().await;
});
