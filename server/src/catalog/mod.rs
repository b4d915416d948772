//! The procedure catalog, server side: publishing (import, seed, withdraw) writes the procedure
//! and its change on the public feed in one transaction; the read endpoints serve the current set.

pub mod store;

use axum::extract::{Path, State};
use axum::Json;
use congdan_core::catalog::Procedure;
use serde::Serialize;

use crate::app::AppState;
use crate::error::ApiError;

/// The demo catalog published on first start of the embedded default.
pub const DEMO_CATALOG: &str = include_str!("../../seed/catalog.json");

#[derive(Serialize)]
pub struct ProcedureList {
    pub procedures: Vec<Procedure>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<ProcedureList>, ApiError> {
    Ok(Json(ProcedureList { procedures: store::list_active(&state.db).await? }))
}

pub async fn get(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<Procedure>, ApiError> {
    store::get_active(&state.db, &code)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("procedure_not_found", "no such procedure"))
}

/// Parses a catalog file strictly: unknown or misspelt keys and inconsistent definitions are
/// refused with every problem listed, so an operator's typo never reaches a phone.
pub fn parse_catalog(json: &str) -> Result<Vec<Procedure>, Vec<String>> {
    let raw: serde_json::Value =
        serde_json::from_str(json).map_err(|e| vec![format!("not JSON: {e}")])?;
    let items = raw.as_array().ok_or_else(|| vec!["expected a JSON array of procedures".to_string()])?;
    let mut problems = Vec::new();
    let mut procedures = Vec::new();
    let mut codes = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let p: Procedure = match serde_json::from_value(item.clone()) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("[{i}]: {e}"));
                continue;
            }
        };
        let again = serde_json::to_value(&p).expect("procedures serialise");
        unknown_keys(item, &again, &format!("[{i}]"), &mut problems);
        if let Err(ps) = p.check_definition() {
            problems.extend(ps.into_iter().map(|m| format!("[{i}] {}: {m}", p.code)));
        }
        if !codes.insert(p.code.clone()) {
            problems.push(format!("[{i}]: duplicate code {}", p.code));
        }
        procedures.push(p);
    }
    if problems.is_empty() {
        Ok(procedures)
    } else {
        Err(problems)
    }
}

fn unknown_keys(original: &serde_json::Value, parsed: &serde_json::Value, place: &str, out: &mut Vec<String>) {
    match (original, parsed) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => unknown_keys(v, w, &format!("{place}.{k}"), out),
                    // An object of only unknown keys parses to an empty default and vanishes:
                    // name the keys inside it.
                    None if v.as_object().is_some_and(|o| !o.is_empty()) => unknown_keys(
                        v,
                        &serde_json::Value::Object(Default::default()),
                        &format!("{place}.{k}"),
                        out,
                    ),
                    None => out.push(format!("{place}.{k}: unknown or empty key")),
                }
            }
        }
        (serde_json::Value::Array(a), serde_json::Value::Array(b)) => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                unknown_keys(v, w, &format!("{place}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_catalog_is_valid_and_complete() {
        let procedures = parse_catalog(DEMO_CATALOG).unwrap_or_else(|p| panic!("{p:#?}"));
        assert!(procedures.len() >= 8);
        for code in ["CT-TAM-TRU", "HT-KHAI-SINH", "HT-KET-HON", "XD-GPXD-NHA-O", "KD-HO-KINH-DOANH", "CT-BAN-SAO", "PA-1022"] {
            assert!(procedures.iter().any(|p| p.code == code), "{code} missing");
        }
    }

    #[test]
    fn misspelt_keys_and_bad_definitions_are_refused() {
        let mut v: serde_json::Value = serde_json::from_str(DEMO_CATALOG).unwrap();
        v[0]["fee_vdn"] = serde_json::json!(5);
        v[1]["fields"][0]["constraints"] = serde_json::json!({"max_lenght": 3});
        v[2]["code"] = v[3]["code"].clone();
        let problems = parse_catalog(&v.to_string()).unwrap_err().join("\n");
        assert!(problems.contains("[0].fee_vdn: unknown"), "{problems}");
        assert!(problems.contains("max_lenght"), "{problems}");
        assert!(problems.contains("duplicate code"), "{problems}");
        assert!(parse_catalog("{}").is_err());
        assert!(parse_catalog("[").is_err());
    }
}
