//! Applies catalog changes from the public feed. Applying the same change twice leaves the same
//! rows (upsert by code; the feed position only moves forward).

use rusqlite::{params, Transaction};

use super::model::Procedure;
use crate::error::{Error, Result};
use crate::sync::wire::Change;
use crate::text::fold;

pub const UPSERT: &str = "procedure.upsert";
pub const WITHDRAW: &str = "procedure.withdraw";

pub(crate) fn apply(tx: &Transaction<'_>, change: &Change) -> Result<()> {
    let ctx = "applying a catalog change";
    match change.kind.as_str() {
        UPSERT => {
            let p: Procedure = serde_json::from_value(change.data.clone()).map_err(|e| {
                Error::BadData(format!("change {} ({}): {e}", change.seq, change.kind))
            })?;
            if p.code != change.key {
                return Err(Error::BadData(format!(
                    "change {}: key {} does not match procedure code",
                    change.seq, change.key
                )));
            }
            let body = serde_json::to_string(&p).map_err(|e| Error::BadData(e.to_string()))?;
            let search_text = fold(&format!(
                "{} {} {} {} {} {} {}",
                p.name.vi, p.name.en, p.code, p.description.vi, p.description.en, p.agency.name.vi,
                p.agency.name.en
            ));
            tx.execute(
                "INSERT INTO procedures(code, kind, name_vi, name_en, agency_code, fee_vnd, \
                     processing_days, body, name_folded, search_text, withdrawn, feed_seq) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11) \
                 ON CONFLICT(code) DO UPDATE SET kind = excluded.kind, name_vi = excluded.name_vi, \
                     name_en = excluded.name_en, agency_code = excluded.agency_code, \
                     fee_vnd = excluded.fee_vnd, processing_days = excluded.processing_days, \
                     body = excluded.body, name_folded = excluded.name_folded, \
                     search_text = excluded.search_text, withdrawn = 0, feed_seq = excluded.feed_seq \
                 WHERE excluded.feed_seq >= procedures.feed_seq",
                params![
                    p.code,
                    p.kind.as_str(),
                    p.name.vi,
                    p.name.en,
                    p.agency.code,
                    p.fee_vnd as i64,
                    p.processing_days as i64,
                    body,
                    fold(&format!("{} {}", p.name.vi, p.name.en)),
                    search_text,
                    change.seq as i64,
                ],
            )
            .map_err(Error::db(ctx))?;
        }
        WITHDRAW => {
            // Withdrawn procedures stay cached (drafts may still point at them) but are hidden.
            tx.execute(
                "UPDATE procedures SET withdrawn = 1, feed_seq = ?2 WHERE code = ?1 AND feed_seq <= ?2",
                params![change.key, change.seq as i64],
            )
            .map_err(Error::db(ctx))?;
        }
        other => {
            return Err(Error::BadData(format!("unknown catalog change kind {other}")));
        }
    }
    Ok(())
}

/// Forgets the cached catalog, used when the server says our cursor is from another history.
pub(crate) fn reset(tx: &Transaction<'_>) -> Result<()> {
    tx.execute("DELETE FROM procedures", []).map_err(Error::db("resetting the catalog"))?;
    Ok(())
}
