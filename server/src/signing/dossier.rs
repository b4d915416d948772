//! Dossier signatures: a case submission carries the resident's signature (statement 0x32) over
//! the canonical submitted content (`congdan_core::signing::dossier_content_hash`). The server
//! verifies it like a decision (a device key of this resident, active at the signing time; every
//! bound field against the submission), keeps it, and the agency downloads a verification bundle
//! for the case. A submission without one is still accepted for now (older app versions) and the
//! case is marked unsigned (docs/api.md).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use congdan_core::crypto::{hex, StatementError};
use congdan_core::drafts::validation::FieldValue as FormValue;
use congdan_core::signing::agency_wire::{DecodedDossier, DossierBundle, DOSSIER_BUNDLE_KIND};
use congdan_core::signing::api::Refusal;
use congdan_core::signing::wire::{decode_statement, SigningError, VerifiedDossierSignature};
use congdan_core::signing::{dossier_content_hash, verify_dossier_signature};
use serde::Deserialize;

use super::verify::{Refused, CLOCK_SKEW_SECS};
use super::{bundle, MAX_STATEMENT_BYTES};
use crate::app::AppState;
use crate::cases::{error_body, json_response};
use crate::db::{now_millis, postgres, sqlite, Db, DbResult};
use rusqlite::OptionalExtension;
use crate::error::ApiError;
use crate::identity::auth::Authenticated;
use crate::identity::device_keys::{self, DeviceKeys};
use crate::identity::rejection::Rejection;

/// The field of a `POST /v1/cases` body, read on its own so the submission type need not know it.
#[derive(Debug, Deserialize)]
struct SignatureField {
    #[serde(default)]
    dossier_signature: Option<String>,
}

/// The `dossier_signature` of a raw submission body, if any.
pub fn statement_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<SignatureField>(body).ok().and_then(|f| f.dossier_signature).filter(|s| !s.is_empty())
}

fn mismatch(code: &'static str, message: &'static str, message_vi: &'static str) -> Refused {
    Refused { code, status: 422, message, message_vi }
}

/// What a submission says, to check its signature against.
pub struct Submitted<'a> {
    pub account_id: &'a str,
    pub procedure_code: &'a str,
    pub draft_id: &'a str,
    pub values: &'a BTreeMap<String, FormValue>,
    pub attachments: &'a BTreeMap<String, Vec<String>>,
}

/// The checks of a dossier signature against what was submitted, in the order of a decision's.
pub fn check(statement: &[u8], keys: &DeviceKeys, submitted: &Submitted<'_>, now_secs: i64) -> Result<VerifiedDossierSignature, Refused> {
    let Submitted { account_id, procedure_code, draft_id, values, attachments } = *submitted;
    let verified = verify_dossier_signature(statement, keys).map_err(|e| match e {
        SigningError::Statement(StatementError::UnknownKey) => Refused::of(Refusal::DeviceKeyUnknown),
        _ => Refused::of(Refusal::SignatureInvalid),
    })?;
    let key = keys.find(&verified.device_key_id).ok_or_else(|| Refused::of(Refusal::DeviceKeyUnknown))?;
    let d = &verified.dossier;
    let signed_at = d.signed_at.min(i64::MAX as u64) as i64;
    if signed_at > now_secs + CLOCK_SKEW_SECS {
        return Err(mismatch("signed_in_future", "the dossier signature is dated in the future", "Thời điểm ký ở tương lai."));
    }
    if key.revoked_at_ms.is_some_and(|r| signed_at * 1000 >= r) {
        return Err(Refused::of(Refusal::DeviceKeyRevoked));
    }
    if signed_at + CLOCK_SKEW_SECS < key.registered_at_ms / 1000 {
        return Err(Refused::of(Refusal::DeviceKeyUnknown));
    }
    if d.account_id != account_id {
        return Err(Refused::of(Refusal::NotYourRequest));
    }
    if d.procedure_code != procedure_code || d.draft_id != draft_id {
        return Err(mismatch("dossier_mismatch", "the signature is for another procedure or draft", "Chữ ký dành cho hồ sơ khác."));
    }
    if d.content_sha256 != dossier_content_hash(values, attachments) {
        return Err(mismatch(
            "dossier_content_mismatch",
            "the signature does not cover the submitted content",
            "Chữ ký không khớp với nội dung hồ sơ đã gửi.",
        ));
    }
    Ok(verified)
}

/// Verifies a submission's signature: `Ok(Ok(Some))` signed and valid, `Ok(Ok(None))` unsigned,
/// `Ok(Err(body))` the refusal to answer (422/403 with its code).
pub async fn verify_submission(
    state: &AppState,
    caller: &Authenticated,
    statement: Option<&str>,
    procedure_code: &str,
    draft_id: &str,
    values: &BTreeMap<String, FormValue>,
    attachments: &BTreeMap<String, Vec<String>>,
) -> Result<Result<Option<VerifiedDossierSignature>, (StatusCode, String)>, ApiError> {
    let Some(text) = statement else { return Ok(Ok(None)) };
    let refusal = |r: Refused| (StatusCode::from_u16(r.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY), error_body(r.code, r.message, r.message_vi, None));
    let bytes = match decode_statement(text) {
        Ok(b) if b.len() <= MAX_STATEMENT_BYTES => b,
        _ => return Ok(Err(refusal(Refused::of(Refusal::SignatureInvalid)))),
    };
    let keys = device_keys::for_account(&state.db, &caller.account_id).await?;
    let now = now_millis() / 1000;
    let submitted = Submitted { account_id: &caller.account_id, procedure_code, draft_id, values, attachments };
    Ok(check(&bytes, &keys, &submitted, now).map(Some).map_err(refusal))
}

/// Keeps a verified signature of case `case_id` (before the case is written: a case is never
/// stored signed-but-without-its-signature; a signature whose case then failed is harmless).
pub async fn store(db: &Db, case_id: &str, account_id: &str, v: &VerifiedDossierSignature) -> DbResult<()> {
    let ctx = "storing a dossier signature";
    let (case_id, account_id, statement, key_id) = (case_id.to_string(), account_id.to_string(), v.bytes.clone(), v.device_key_id.clone());
    let signed_at = v.dossier.signed_at.min(i64::MAX as u64) as i64;
    let now = now_millis();
    match db {
        Db::Sqlite(pool) => {
            pool.write(ctx, move |tx| {
                tx.execute(
                    "INSERT INTO case_signatures(case_id, account_id, statement, key_id, signed_at, stored_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT(case_id) DO NOTHING",
                    rusqlite::params![case_id, account_id, statement, key_id, signed_at, now],
                )
                .map_err(sqlite::q(ctx))?;
                Ok(())
            })
            .await
        }
        Db::Postgres(pool) => {
            pool.client()
                .await?
                .execute(
                    "INSERT INTO case_signatures(case_id, account_id, statement, key_id, signed_at, stored_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (case_id) DO NOTHING",
                    &[&case_id, &account_id, &statement, &key_id, &signed_at, &now],
                )
                .await
                .map_err(postgres::q(ctx))?;
            Ok(())
        }
    }
}

/// A case's stored signature statement, if it was signed.
pub async fn load(db: &Db, case_id: &str) -> DbResult<Option<Vec<u8>>> {
    let ctx = "reading a dossier signature";
    let id = case_id.to_string();
    match db {
        Db::Sqlite(pool) => {
            pool.read(ctx, move |c| c.query_row("SELECT statement FROM case_signatures WHERE case_id = ?1", [id], |r| r.get(0)).optional())
                .await
        }
        Db::Postgres(pool) => Ok(pool
            .client()
            .await?
            .query_opt("SELECT statement FROM case_signatures WHERE case_id = $1", &[&id])
            .await
            .map_err(postgres::q(ctx))?
            .map(|r| r.get(0))),
    }
}

/// `GET /v1/agency/cases/{id}/signature-bundle`: the verification bundle of one of the agency's
/// cases (`409 case_unsigned` for a case submitted without a signature).
pub async fn case_bundle(State(state): State<AppState>, caller: Authenticated, Path(id): Path<String>) -> Result<Response, Rejection> {
    let agencies = super::agency::agency_codes(&caller)?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "case_not_found", "no such case", "Không tìm thấy hồ sơ.");
    let (case, _) = crate::cases::store::get_case(&state.db, &id)
        .await?
        .filter(|(c, _)| agencies.contains(&c.agency_code))
        .ok_or_else(not_found)?;
    let Some(statement) = load(&state.db, &case.id).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "case_unsigned",
            "this case was submitted without a signature (an older app version)",
            "Hồ sơ này được gửi không kèm chữ ký (phiên bản ứng dụng cũ).",
        )
        .into());
    };
    let keys = device_keys::for_account(&state.db, &case.account_id).await?;
    let verified = verify_dossier_signature(&statement, &keys).map_err(ApiError::internal)?;
    let key = keys.find(&verified.device_key_id).ok_or_else(|| ApiError::internal("a signed case's key is gone"))?;
    let signed = bundle::split(&statement, &key.public(), &verified.device_key_id, true).map_err(ApiError::internal)?;
    let attestation = bundle::attest(&state.db, key).await?;
    let d = verified.dossier;
    let server_public_key_pem = attestation.signed.public_key_pem.clone();
    let body = DossierBundle {
        kind: DOSSIER_BUNDLE_KIND.into(),
        case_id: case.id,
        case_number: case.number,
        dossier: signed,
        attestation,
        server_public_key_pem,
        decoded: DecodedDossier {
            statement_type: "0x32 dossier signature".into(),
            account_id: d.account_id,
            procedure_code: d.procedure_code,
            draft_id: d.draft_id,
            content_sha256: hex(&d.content_sha256),
            device_key_id: hex(&verified.device_key_id),
            signed_at: d.signed_at,
        },
    };
    Ok(json_response(StatusCode::OK, serde_json::to_string(&body).map_err(ApiError::internal)?))
}
