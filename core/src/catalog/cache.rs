//! Parsed procedures kept in memory, keyed by code and checked against the row's `feed_seq`: a
//! form (several KiB of JSON) is parsed once, not on every keystroke of an autosave.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::Procedure;
use crate::error::{Error, Result};

#[derive(Default)]
pub struct ProcedureCache {
    parsed: Mutex<HashMap<String, (i64, Arc<Procedure>)>>,
}

impl ProcedureCache {
    /// The procedure `code` as stored at `feed_seq`, parsed from the cache's row when it is not
    /// in memory at that version.
    pub fn get(&self, conn: &Connection, code: &str, feed_seq: i64) -> Result<Arc<Procedure>> {
        if let Some((seq, p)) = self.parsed.lock().unwrap_or_else(|e| e.into_inner()).get(code) {
            if *seq == feed_seq {
                return Ok(p.clone());
            }
        }
        let body: String = conn
            .prepare_cached("SELECT body FROM procedures WHERE code = ?1")
            .and_then(|mut s| s.query_row([code], |r| r.get(0)))
            .map_err(Error::db("reading a procedure"))?;
        let procedure: Arc<Procedure> = Arc::new(
            serde_json::from_str(&body).map_err(|e| Error::BadData(format!("cached procedure {code} unreadable: {e}")))?,
        );
        self.parsed.lock().unwrap_or_else(|e| e.into_inner()).insert(code.to_string(), (feed_seq, procedure.clone()));
        Ok(procedure)
    }
}
