//! Offline reads of the cached catalog: list, search (diacritic-insensitive), open one.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::model::{Procedure, ProcedureKind};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::text;

/// What a list row shows: enough to choose a procedure without parsing its form.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcedureSummary {
    pub code: String,
    pub kind: ProcedureKind,
    pub name_vi: String,
    pub name_en: String,
    pub agency_code: String,
    pub fee_vnd: u64,
    pub processing_days: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CatalogStatus {
    pub procedure_count: u32,
    /// When the public feed was last pulled to the end (milliseconds since the epoch).
    pub last_synced_at_ms: Option<i64>,
}

const SUMMARY_COLUMNS: &str =
    "code, kind, name_vi, name_en, agency_code, fee_vnd, processing_days, name_folded, search_text";

fn summary(row: &Row<'_>) -> rusqlite::Result<ProcedureSummary> {
    let kind: String = row.get(1)?;
    Ok(ProcedureSummary {
        code: row.get(0)?,
        kind: ProcedureKind::parse(&kind).unwrap_or(ProcedureKind::Procedure),
        name_vi: row.get(2)?,
        name_en: row.get(3)?,
        agency_code: row.get(4)?,
        fee_vnd: row.get::<_, i64>(5)? as u64,
        processing_days: row.get::<_, i64>(6)? as u32,
    })
}

/// Every active procedure, by Vietnamese name.
pub fn list(store: &Store, kind: Option<ProcedureKind>) -> Result<Vec<ProcedureSummary>> {
    store.read("listing procedures", |c| {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM procedures WHERE withdrawn = 0 \
             AND (?1 IS NULL OR kind = ?1) ORDER BY name_folded"
        ))?;
        let rows = stmt.query_map([kind.map(|k| k.as_str())], summary)?;
        rows.collect()
    })
}

/// Procedures whose names, description, code or agency contain every word of the query, with or
/// without diacritics. Matches in the name rank first.
pub fn search(store: &Store, query: &str, limit: u32) -> Result<Vec<ProcedureSummary>> {
    let tokens = text::query_tokens(query);
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let mut scored = store.read("searching procedures", |c| {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM procedures WHERE withdrawn = 0 AND instr(search_text, ?1) > 0"
        ))?;
        let mut out = Vec::new();
        let mut rows = stmt.query([&tokens[0]])?;
        while let Some(row) = rows.next()? {
            let name_folded: String = row.get(7)?;
            let search_text: String = row.get(8)?;
            if !tokens.iter().all(|t| search_text.contains(t.as_str())) {
                continue;
            }
            let in_name = tokens.iter().filter(|t| name_folded.contains(t.as_str())).count();
            let phrase = name_folded.contains(&tokens.join(" "));
            out.push(((phrase as usize, in_name), name_folded, summary(row)?));
        }
        Ok(out)
    })?;
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(scored.into_iter().take(limit as usize).map(|(_, _, s)| s).collect())
}

/// The full procedure with its form, or `None` when it is unknown or withdrawn.
pub fn get(store: &Store, code: &str) -> Result<Option<Procedure>> {
    let body: Option<String> = store.read("reading a procedure", |c| {
        c.query_row(
            "SELECT body FROM procedures WHERE code = ?1 AND withdrawn = 0",
            [code],
            |r| r.get(0),
        )
        .optional()
    })?;
    body.map(|b| {
        serde_json::from_str(&b)
            .map_err(|e| Error::BadData(format!("cached procedure {code} unreadable: {e}")))
    })
    .transpose()
}

pub fn status(store: &Store) -> Result<CatalogStatus> {
    store.read("reading catalog status", |c: &Connection| {
        let procedure_count: i64 =
            c.query_row("SELECT count(*) FROM procedures WHERE withdrawn = 0", [], |r| r.get(0))?;
        let last_synced_at_ms: Option<i64> = c
            .query_row(
                "SELECT NULLIF(synced_at, 0) FROM feed_cursors WHERE feed = ?1",
                params![crate::sync::PUBLIC_FEED],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten();
        Ok(CatalogStatus { procedure_count: procedure_count as u32, last_synced_at_ms })
    })
}
