//! [`Gate`]: a gate device as it runs: the validator, the tap log in the core's store, the
//! station peers and the server link, around one `Core` (logged in with the operator role when
//! it has a server link at all).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::core::Core;
use crate::error::{Error, Result};

use super::decision::Decision;
use super::keys::OperatorKeys;
use super::link::{self, LinkReport};
use super::peers::{PeerLink, StationKey};
use super::revocation::RevocationList;
use super::{taplog, GateConfig, GateValidator};

const TRUST_KEYS: &str = "operator_keys";
const TRUST_REVOCATIONS: &str = "revocation_list";

/// Unix seconds by the gate's clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A gate device: decide, log, tell the peers, sync with the server.
pub struct Gate {
    core: Core,
    validator: Arc<GateValidator>,
    /// The station network, once joined.
    peers: Mutex<Option<Arc<PeerLink>>>,
}

impl Gate {
    /// Opens the gate on `core`'s store: the keys and revocation list it held before a restart,
    /// and the accepted taps of the last pass-back window replayed into the validator.
    pub fn open(core: Core, config: GateConfig, now: u64) -> Result<Gate> {
        // The server and the peers both carry the gate id: 1 to 32 letters, digits, '-', '_', '.'.
        let id = &config.gate_id;
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(Error::InvalidConfig("gate id: 1 to 32 letters, digits, '-', '_' or '.'".into()));
        }
        let store = core.store();
        let keys = match taplog::load_trust(store, TRUST_KEYS)? {
            Some(json) => OperatorKeys::from_json(&json).map_err(|e| Error::BadData(e.to_string()))?,
            None => OperatorKeys::default(),
        };
        let validator = Arc::new(GateValidator::new(config, keys, RevocationList::default()));
        if let Some(statement) = taplog::load_trust(store, TRUST_REVOCATIONS)? {
            // Verified again: the store is not trusted more than the network.
            if let Err(e) = validator.update_revocations(&statement, now) {
                tracing::warn!("gate: stored revocation list refused: {e}");
            }
        }
        let window = validator.config().pass_back_window_s;
        for tap in taplog::recent_accepted(store, now, window)? {
            validator.record_tap(&tap, now);
        }
        Ok(Gate { core, validator, peers: Mutex::new(None) })
    }

    pub fn validator(&self) -> &Arc<GateValidator> {
        &self.validator
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    /// Decides about a code (bytes), logs the decision durably, and tells the station's peers
    /// about an accept. `now`: the gate's clock.
    pub fn tap(&self, code: &[u8], now: u64) -> Result<Decision> {
        let decision = self.validator.validate(code, now);
        self.after(decision, now)
    }

    /// [`Gate::tap`] for a code given as QR text (base45).
    pub fn tap_text(&self, text: &str, now: u64) -> Result<Decision> {
        let decision = self.validator.validate_text(text, now);
        self.after(decision, now)
    }

    fn after(&self, decision: Decision, now: u64) -> Result<Decision> {
        // Peers first: they need it within the slot, the log only needs it before a restart.
        if let Decision::Accept(accepted) = &decision {
            if let Some(peers) = self.peer_link() {
                peers.announce(&accepted.tap(now));
            }
        }
        taplog::log_decision(self.core.store(), self.validator.config(), &decision, now)?;
        Ok(decision)
    }

    /// Trusts these operator keys from now on (given as a file, or pulled), and keeps them.
    pub fn set_keys(&self, keys: OperatorKeys) -> Result<()> {
        taplog::save_trust(self.core.store(), TRUST_KEYS, keys.to_json().as_bytes())?;
        self.validator.set_keys(keys);
        Ok(())
    }

    /// Verifies and takes a signed revocation list (unless older than the one held), and keeps
    /// it. Returns the number of revoked ids.
    pub fn set_revocations(&self, statement: &[u8], now: u64) -> Result<usize> {
        let n = self.validator.update_revocations(statement, now).map_err(|e| Error::BadData(e.to_string()))?;
        taplog::save_trust(self.core.store(), TRUST_REVOCATIONS, statement)?;
        Ok(n)
    }

    /// Joins the station network: listens on `listen` and tells `peers` about every accept.
    /// Peer taps are applied to pass-back at once and logged. Returns the bound address.
    fn peer_link(&self) -> Option<Arc<PeerLink>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn join_station(&self, listen: SocketAddr, peers: Vec<SocketAddr>, key: StationKey) -> Result<SocketAddr> {
        let io = |e: std::io::Error| Error::InvalidConfig(format!("station network: {e}"));
        let link = Arc::new(PeerLink::bind(listen, peers, key, &self.validator.config().gate_id).map_err(io)?);
        let addr = link.local_addr().map_err(io)?;
        let validator = self.validator.clone();
        let core = self.core.clone();
        link.spawn_receiver(unix_now, move |peer| {
            let now = unix_now();
            validator.record_tap(&peer.tap, now);
            let station = validator.config().station_id;
            if let Err(e) = taplog::log_peer_tap(core.store(), &peer.gate_id, station, &peer.tap) {
                tracing::warn!("gate: cannot log a peer tap: {e}");
            }
        })
        .map_err(io)?;
        if let Some(old) = self.peers.lock().unwrap_or_else(|p| p.into_inner()).replace(link) {
            old.stop();
        }
        Ok(addr)
    }

    /// (datagrams sent to peers, sends that failed).
    pub fn peer_counters(&self) -> (u64, u64) {
        self.peer_link().map(|p| p.counters()).unwrap_or((0, 0))
    }

    /// One exchange with the server: pull keys, then the revocation list (verified with the
    /// keys held), queue the taps and send the outbox. Never fails: what could not be done is
    /// in the report, and the gate keeps what it had.
    pub async fn sync_with_server(&self, now: u64) -> LinkReport {
        let mut report = LinkReport::default();
        match link::pull_keys(&self.core).await {
            Ok(keys) if !keys.is_empty() => {
                if let Err(e) = self.set_keys(keys) {
                    report.keys_error = Some(e.to_string());
                }
            }
            Ok(_) => report.keys_error = Some("the server listed no operator keys; keeping the ones held".into()),
            Err(e) => report.keys_error = Some(e.to_string()),
        }
        report.keys = self.validator.keys().keys().len();
        // The server's clock, learned by the client on this exchange, corrects the gate's.
        let server_minus_gate_ms = self.core.session().client.clock_offset_ms();
        if report.keys_error.is_none() {
            self.validator.set_clock_offset(-(server_minus_gate_ms / 1000));
        }
        match link::pull_revocations(&self.core).await {
            Ok(statement) => {
                if let Err(e) = self.set_revocations(&statement, now) {
                    report.revocations_error = Some(e.to_string());
                }
            }
            Err(e) => report.revocations_error = Some(e.to_string()),
        }
        (report.revocation_sequence, report.revoked) = self.validator.revocation_status();
        match taplog::queue_upload(self.core.store()) {
            Ok(n) => report.taps_queued = n,
            Err(e) => report.upload_error = Some(e.to_string()),
        }
        match self.core.send_outbox().await {
            Ok(drain) => report.upload = Some(drain),
            Err(e) => report.upload_error = Some(e.to_string()),
        }
        if let Err(e) = taplog::prune(self.core.store(), now) {
            tracing::warn!("gate: cannot prune the tap log: {e}");
        }
        report
    }

    pub fn tap_log_status(&self) -> Result<taplog::TapLogStatus> {
        taplog::status(self.core.store())
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(peers) = self.peer_link() {
            peers.stop();
        }
    }
}
