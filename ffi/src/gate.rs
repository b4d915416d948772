//! The gate side of tickets for Android-based gate devices: open a gate on a core (logged in
//! with the operator role when it has a server link), give it keys and revocations (pulled or
//! from files), validate codes as QR text or bytes, join the station network.

use std::sync::Arc;

use congdan_core::tickets::gate::{self, peers::StationKey, Decision, Direction, GateConfig, OperatorKeys, RefusalReason};

use crate::core_object::CongdanCore;
use crate::error::CongdanError;

/// Why a gate refuses a code (one reason per decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum GateRefusal {
    Malformed,
    UnknownKey,
    Forged,
    Tampered,
    WrongDevice,
    Revoked,
    Expired,
    NotYetValid,
    StaleCode,
    ClockSkew,
    PassBack,
    WrongStation,
    FareTooLow,
    AlreadyUsed,
}

impl From<RefusalReason> for GateRefusal {
    fn from(r: RefusalReason) -> Self {
        match r {
            RefusalReason::Malformed => GateRefusal::Malformed,
            RefusalReason::UnknownKey => GateRefusal::UnknownKey,
            RefusalReason::Forged => GateRefusal::Forged,
            RefusalReason::Tampered => GateRefusal::Tampered,
            RefusalReason::WrongDevice => GateRefusal::WrongDevice,
            RefusalReason::Revoked => GateRefusal::Revoked,
            RefusalReason::Expired => GateRefusal::Expired,
            RefusalReason::NotYetValid => GateRefusal::NotYetValid,
            RefusalReason::StaleCode => GateRefusal::StaleCode,
            RefusalReason::ClockSkew => GateRefusal::ClockSkew,
            RefusalReason::PassBack => GateRefusal::PassBack,
            RefusalReason::WrongStation => GateRefusal::WrongStation,
            RefusalReason::FareTooLow => GateRefusal::FareTooLow,
            RefusalReason::AlreadyUsed => GateRefusal::AlreadyUsed,
        }
    }
}

/// A gate's decision: open or not, and what its screen says.
#[derive(Debug, Clone, uniffi::Record)]
pub struct GateDecision {
    pub accepted: bool,
    /// `None` when accepted.
    pub refusal: Option<GateRefusal>,
    /// `accept` or the refusal's stable code (`stale_code`, `pass_back`, …).
    pub code: String,
    pub message_vi: String,
    pub message_en: String,
    /// Hex of the 16-byte ticket id, once the operator's signature verified.
    pub ticket_id: Option<String>,
    /// Product number (1 single journey, 2 day, 3 three-day, 4 monthly) when accepted.
    pub product: Option<u64>,
    pub concession: Option<u64>,
    /// Seconds of validity left when accepted.
    pub remaining_s: Option<u64>,
    /// A single journey consumed by this exit.
    pub consumed: bool,
    /// Seconds the phone's clock was ahead, when tolerated (accepted) or too far (clock skew).
    pub clock_skew_s: Option<i64>,
}

impl From<Decision> for GateDecision {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Accept(a) => GateDecision {
                accepted: true,
                refusal: None,
                code: "accept".into(),
                message_vi: "Mời qua".into(),
                message_en: "Please pass".into(),
                ticket_id: Some(congdan_core::crypto::hex(&a.ticket_id)),
                product: Some(a.product),
                concession: a.concession,
                remaining_s: Some(a.remaining_s),
                consumed: a.consumed_until.is_some(),
                clock_skew_s: a.clock_skew_s,
            },
            Decision::Refuse(r) => {
                let (vi, en) = r.reason.message();
                GateDecision {
                    accepted: false,
                    refusal: Some(r.reason.into()),
                    code: r.reason.code().into(),
                    message_vi: vi.into(),
                    message_en: en.into(),
                    ticket_id: r.ticket_id.map(|id| congdan_core::crypto::hex(&id)),
                    product: None,
                    concession: None,
                    remaining_s: None,
                    consumed: false,
                    clock_skew_s: r.clock_skew_s,
                }
            }
        }
    }
}

/// How a gate is set up. Times in seconds; `None` takes the default.
#[derive(Debug, Clone, uniffi::Record)]
pub struct GateSettings {
    pub station_id: u64,
    /// 1 to 32 letters, digits, '-', '_' or '.'.
    pub gate_id: String,
    /// `true`: an entry gate; `false`: an exit gate.
    pub entry: bool,
    pub station_group: Option<u64>,
    pub slot_length_s: Option<u64>,
    pub slot_tolerance_s: Option<u64>,
    pub clock_window_s: Option<u64>,
    pub pass_back_window_s: Option<u64>,
}

/// What one exchange with the server did; the gate runs on whatever failed.
#[derive(Debug, Clone, uniffi::Record)]
pub struct GateLinkReport {
    pub keys: u64,
    pub keys_error: Option<String>,
    pub revocation_sequence: u64,
    pub revoked: u64,
    pub revocations_error: Option<String>,
    pub taps_queued: u64,
    pub taps_sent_batches: u32,
    pub upload_error: Option<String>,
    pub offline: bool,
}

fn invalid(detail: String) -> CongdanError {
    CongdanError::InvalidInput {
        message_vi: "Dữ liệu cấu hình cổng không hợp lệ.".into(),
        message_en: "Invalid gate data.".into(),
        detail,
    }
}

/// A gate device.
#[derive(uniffi::Object)]
pub struct GateApi {
    inner: gate::Gate,
}

#[uniffi::export(async_runtime = "tokio")]
impl GateApi {
    /// Opens a gate on `core`'s storage: keys, revocation list and recent taps it kept.
    #[uniffi::constructor]
    pub fn open(core: Arc<CongdanCore>, settings: GateSettings) -> Result<Arc<Self>, CongdanError> {
        let direction = if settings.entry { Direction::Entry } else { Direction::Exit };
        let mut config = GateConfig::new(settings.station_id, &settings.gate_id, direction);
        config.station_group = settings.station_group.unwrap_or(config.station_group);
        config.slot_length_s = settings.slot_length_s.unwrap_or(config.slot_length_s);
        config.slot_tolerance_s = settings.slot_tolerance_s.unwrap_or(config.slot_tolerance_s);
        config.clock_window_s = settings.clock_window_s.unwrap_or(config.clock_window_s);
        config.pass_back_window_s = settings.pass_back_window_s.unwrap_or(config.pass_back_window_s);
        let inner = gate::Gate::open(core.core().clone(), config, gate::unix_now())?;
        Ok(Arc::new(GateApi { inner }))
    }

    /// Validates a code read from a QR (base45 text) and logs the decision. `now_s`: unix
    /// seconds, `None` for the gate's clock.
    pub fn validate_text(&self, text: String, now_s: Option<u64>) -> Result<GateDecision, CongdanError> {
        Ok(self.inner.tap_text(&text, now_s.unwrap_or_else(gate::unix_now))?.into())
    }

    /// Validates a code given as bytes and logs the decision.
    pub fn validate_bytes(&self, code: Vec<u8>, now_s: Option<u64>) -> Result<GateDecision, CongdanError> {
        Ok(self.inner.tap(&code, now_s.unwrap_or_else(gate::unix_now))?.into())
    }

    /// Trusts the operator keys in this JSON (the shape of `GET /v1/operator/keys`).
    pub fn set_keys_json(&self, json: String) -> Result<u64, CongdanError> {
        let keys = OperatorKeys::from_json(json.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let n = keys.keys().len() as u64;
        self.inner.set_keys(keys)?;
        Ok(n)
    }

    /// Takes a signed revocation list (statement `0x22`), verified with the trusted keys.
    pub fn set_revocations(&self, statement: Vec<u8>) -> Result<u64, CongdanError> {
        Ok(self.inner.set_revocations(&statement, gate::unix_now())? as u64)
    }

    /// Joins the station network: listen on `listen` (`0.0.0.0:47800`), tell `peers`
    /// (`10.0.0.12:47800`, …) about every accept; `station_key`: the station's 32-byte key.
    /// Returns the address listened on.
    pub fn join_station(&self, listen: String, peers: Vec<String>, station_key: Vec<u8>) -> Result<String, CongdanError> {
        let listen = listen.parse().map_err(|e| invalid(format!("listen address: {e}")))?;
        let peers = peers
            .iter()
            .map(|p| p.parse().map_err(|e| invalid(format!("peer address {p}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let key: [u8; 32] = station_key.as_slice().try_into().map_err(|_| invalid("the station key is 32 bytes".into()))?;
        Ok(self.inner.join_station(listen, peers, StationKey::new(&key))?.to_string())
    }

    /// Pulls keys and revocations, uploads taps. Never throws for the network: see the report.
    pub async fn sync_with_server(&self) -> GateLinkReport {
        let r = self.inner.sync_with_server(gate::unix_now()).await;
        GateLinkReport {
            keys: r.keys as u64,
            keys_error: r.keys_error.clone(),
            revocation_sequence: r.revocation_sequence,
            revoked: r.revoked as u64,
            revocations_error: r.revocations_error.clone(),
            taps_queued: r.taps_queued as u64,
            taps_sent_batches: r.upload.as_ref().map(|u| u.sent).unwrap_or(0),
            upload_error: r.upload_error.clone(),
            offline: r.all_failed(),
        }
    }
}
