//! The entry object: open the core once per app with a data directory, a server URL and the
//! platform services; reach each capability through it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::catalog::{self, CatalogStatus, Procedure, ProcedureKind, ProcedureSummary};
use crate::drafts::hlc::HlcClock;
use crate::drafts::store::{Draft, DraftSummary};
use crate::drafts::validation::{self, CalendarDate, FieldIssue, FieldValue};
use crate::outbox::{self, DrainReport, OutboxItem};
use crate::error::{Error, Result};
use crate::identity::wire::AccountInfo;
use crate::identity::{IdentityState, LoginRequest, Session, SessionState};
use crate::platform::Platform;
use crate::store::Store;
use crate::sync::client::{ApiClient, ClientConfig};
use crate::sync::{self, SyncProgress, SyncReport};

#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Where the database and files live (the app's private storage on a phone).
    pub data_dir: PathBuf,
    /// `https://…`, or `http://` to loopback for development.
    pub server_url: String,
    pub client: ClientConfig,
    /// How long after the first unsent edit a draft's backup goes out: edits in between ride
    /// along in the same upload.
    pub draft_backup_delay_ms: i64,
}

impl CoreConfig {
    pub const DEFAULT_DRAFT_BACKUP_DELAY_MS: i64 = 30_000;

    pub fn new(data_dir: impl Into<PathBuf>, server_url: impl Into<String>) -> Self {
        CoreConfig {
            data_dir: data_dir.into(),
            server_url: server_url.into(),
            client: ClientConfig::default(),
            draft_backup_delay_ms: Self::DEFAULT_DRAFT_BACKUP_DELAY_MS,
        }
    }
}

struct Inner {
    store: Store,
    client: ApiClient,
    platform: Platform,
    /// One sync at a time: a second caller waits for the first instead of pulling twice.
    sync_lock: tokio::sync::Mutex<()>,
    identity: IdentityState,
    /// Stamps every draft edit for per-field merging across the resident's devices.
    clock: HlcClock,
    /// Wakes the outbox sender: a new command, or the network came back.
    outbox_wakeup: tokio::sync::Notify,
    /// Wakes the outbox sender `draft_backup_delay_ms` later: an edit queued a draft backup.
    backup_wakeup: tokio::sync::Notify,
    draft_backup_delay_ms: i64,
    /// One drain at a time.
    outbox_lock: tokio::sync::Mutex<()>,
    /// Parsed forms, so an autosave does not parse its procedure's JSON again.
    procedures: crate::catalog::cache::ProcedureCache,
}

/// The core. Cheap to clone; every clone shares one store and one HTTP client.
#[derive(Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

impl Core {
    pub const DATABASE_FILE: &'static str = "congdan.db";

    pub fn open(config: CoreConfig, platform: Platform) -> Result<Core> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| Error::DataDirectory { path: config.data_dir.clone(), source })?;
        let client = ApiClient::new(&config.server_url, config.client.clone())?;
        let store = Store::open(&config.data_dir.join(Self::DATABASE_FILE))?;
        outbox::recover(&store)?;
        // Files a crash left unused (a draft deleted for good, a half-copied attachment).
        if let Err(e) = crate::drafts::attachments::collect_garbage(&store) {
            tracing::warn!("attachments: cleanup at start failed: {e}");
        }
        let clock = HlcClock::new(device_node(&store)?)
            .map_err(|e| Error::BadData(format!("device clock: {e}")))?;
        let core = Core {
            inner: Arc::new(Inner {
                store,
                client,
                platform,
                sync_lock: tokio::sync::Mutex::new(()),
                identity: IdentityState::default(),
                clock,
                outbox_wakeup: tokio::sync::Notify::new(),
                backup_wakeup: tokio::sync::Notify::new(),
                draft_backup_delay_ms: config.draft_backup_delay_ms,
                outbox_lock: tokio::sync::Mutex::new(()),
                procedures: Default::default(),
            }),
        };
        core.restore_clock(crate::drafts::backup::newest_stamp);
        Ok(core)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Pulls every feed to its end. Offline is a state in the report, not an error.
    pub async fn sync(
        &self,
        progress: &(dyn Fn(SyncProgress) -> bool + Send + Sync),
    ) -> Result<SyncReport> {
        let _one_at_a_time = self.inner.sync_lock.lock().await;
        let report =
            sync::pull_all(&self.inner.store, &self.inner.client, &self.inner.platform, &self.session(), progress).await;
        self.restore_clock(crate::drafts::backup::newest_merged_stamp); // other devices' drafts
        if matches!(&report, Ok(r) if r.state == crate::sync::SyncState::UpToDate) {
            // Online and logged in: a credential close to its end is renewed now, so it keeps
            // working through the weeks offline that follow. A failure waits for the next sync.
            if let Err(e) = self.credential().renew_if_due().await {
                tracing::warn!("identity credential not renewed: {e}");
            }
            // A front desk (or a phone that showed its credential) learns rotated city keys.
            if let Err(e) = self.credential().update_keys_if_stale().await {
                tracing::warn!("city credential keys not updated: {e}");
            }
        }
        report
    }

    /// Keeps the draft clock after every stamp the store holds: at open all of them (this
    /// device's own, its clock may have gone back since), after a sync or drain the newest one
    /// merged from the resident's other devices.
    fn restore_clock(&self, newest: fn(&Store) -> Result<Option<crate::drafts::hlc::Hlc>>) {
        match newest(&self.inner.store) {
            Ok(Some(stamp)) => self.inner.clock.restore(&stamp),
            Ok(None) => {}
            Err(e) => tracing::warn!("drafts: cannot read the newest stamp: {e}"),
        }
    }

    pub fn catalog(&self) -> CatalogService {
        CatalogService { core: self.clone() }
    }

    pub fn identity(&self) -> IdentityService {
        IdentityService { core: self.clone() }
    }

    pub fn drafts(&self) -> DraftsService {
        DraftsService { core: self.clone() }
    }

    /// QR transit tickets: buy, list, and the rotating code to show at the gate.
    pub fn tickets(&self) -> crate::tickets::TicketsService {
        crate::tickets::TicketsService::new(self.clone())
    }

    /// Document signing: the resident's signature requests, their documents, approve or decline.
    pub fn signing(&self) -> crate::signing::SigningService {
        crate::signing::SigningService::new(self.clone())
    }

    /// Server clock minus this device's clock: learned from this run's responses (kept for later),
    /// or as last kept (offline since the app started), or 0 if the server was never reached.
    /// Ticket codes, identity codes and the desk's checks are all dated on the server's clock.
    pub fn server_clock_offset_ms(&self) -> Result<i64> {
        let store = self.store();
        let stored = crate::tickets::store::clock_offset_ms(store)?;
        match self.inner.client.learned_clock_offset_ms() {
            Some(learned) => {
                // Kept when it moved by more than a rounding error, so showing a code rarely writes.
                if stored.is_none_or(|s| (s - learned).abs() > 250) {
                    crate::tickets::store::set_clock_offset_ms(store, learned)?;
                }
                Ok(learned)
            }
            None => Ok(stored.unwrap_or(0)),
        }
    }

    /// The resident's identity credential: renew it online, show it as a QR offline.
    pub fn credential(&self) -> crate::identity::credential::holder::CredentialService {
        crate::identity::credential::holder::CredentialService { core: self.clone() }
    }

    /// A front-desk verifier of identity codes (offline, with the city keys it keeps).
    pub fn credential_verifier(&self) -> crate::identity::credential::verifier::CredentialVerifier {
        crate::identity::credential::verifier::CredentialVerifier { core: self.clone(), freshness: Default::default() }
    }

    /// The agency side of cases, for staff with a role `agency:<CODE>`.
    pub fn agency(&self) -> crate::drafts::agency::AgencyService {
        crate::drafts::agency::AgencyService { core: self.clone() }
    }

    /// Sends every due command in the outbox now (one wake-up, back to back).
    pub async fn send_outbox(&self) -> Result<DrainReport> {
        let _one_at_a_time = self.inner.outbox_lock.lock().await;
        if self.inner.platform.network.current_state().ok() == Some(crate::platform::NetworkState::Offline) {
            let waiting = outbox::items(&self.inner.store, None)?
                .iter()
                .filter(|i| i.state == outbox::OutboxState::Waiting)
                .count() as u32;
            return Ok(DrainReport { waiting, offline: true, ..DrainReport::default() });
        }
        let report = outbox::drain(&self.inner.store, &self.session()).await;
        self.restore_clock(crate::drafts::backup::newest_merged_stamp); // a backup's answer carries the other devices' stamps
        report
    }

    /// Tells the outbox sender to look again: the shell calls it when the network comes back.
    /// Postponed commands become due at once (their backoff was for the outage).
    pub fn outbox_wakeup(&self) {
        if let Err(e) = outbox::make_due(&self.inner.store) {
            tracing::warn!("outbox: cannot reschedule: {e}");
        }
        self.inner.outbox_wakeup.notify_one();
    }

    /// Sends every waiting command now, postponed ones included (the resident pressed "send").
    pub async fn retry_outbox_now(&self) -> Result<DrainReport> {
        outbox::make_due(&self.inner.store)?;
        self.send_outbox().await
    }

    /// Runs the outbox sender until the returned future is dropped: it drains when woken (a new
    /// command, the network back) or when the earliest postponed command falls due; there is
    /// no polling timer. Shells run it in the background while the app is alive.
    pub async fn run_outbox_sender(&self) {
        loop {
            match self.send_outbox().await {
                Ok(report) if report.sent + report.rejected > 0 => {
                    tracing::info!(sent = report.sent, rejected = report.rejected, "outbox drained");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("outbox drain failed: {e}"),
            }
            let wait = match outbox::next_due_at(&self.inner.store) {
                Ok(Some(due)) => std::time::Duration::from_millis((due - crate::store::now_millis()).clamp(0, 3_600_000) as u64),
                _ => std::time::Duration::from_secs(3_600),
            };
            let mut deadline = tokio::time::Instant::now() + wait.max(std::time::Duration::from_millis(200));
            let backup_delay = std::time::Duration::from_millis(self.inner.draft_backup_delay_ms.max(0) as u64);
            loop {
                tokio::select! {
                    _ = self.inner.outbox_wakeup.notified() => break,
                    // A draft backup is due: drain a little later, unless something is sooner.
                    _ = self.inner.backup_wakeup.notified() => {
                        deadline = deadline.min(tokio::time::Instant::now() + backup_delay);
                    }
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
    }

    pub(crate) fn session(&self) -> Session<'_> {
        Session {
            store: &self.inner.store,
            client: &self.inner.client,
            keystore: &self.inner.platform.keystore,
            state: &self.inner.identity,
        }
    }
}

/// This device's node name for the hybrid logical clock: random, made once, kept in `meta`.
fn device_node(store: &Store) -> Result<String> {
    use rusqlite::OptionalExtension;
    let existing: Option<String> = store.read("reading the device node", |c| {
        c.query_row("SELECT value FROM meta WHERE key = 'device_node'", [], |r| r.get(0)).optional()
    })?;
    if let Some(node) = existing {
        return Ok(node);
    }
    let node = crate::crypto::hex(&rand::random::<[u8; 8]>());
    store.write("storing the device node", |tx| {
        tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('device_node', ?1)", [&node])
            .map_err(Error::db("storing the device node"))?;
        Ok(())
    })?;
    device_node(store)
}

/// Case drafts: offline forms with autosave, validation, and exactly-once submission.
#[derive(Clone)]
pub struct DraftsService {
    core: Core,
}

impl DraftsService {
    fn store(&self) -> &Store {
        &self.core.inner.store
    }

    /// A stamp for a local change of a draft (after every stamp seen from other devices).
    fn stamp(&self) -> crate::drafts::hlc::Hlc {
        self.core.inner.clock.now(crate::store::now_millis().max(0) as u64)
    }

    fn procedure(&self, code: &str) -> Result<Procedure> {
        catalog::queries::get(self.store(), code)?.ok_or_else(|| Error::ProcedureUnavailable { code: code.to_string() })
    }

    /// Starts a draft of a cached, active procedure (works offline).
    pub fn create(&self, procedure_code: &str, title: Option<&str>) -> Result<DraftSummary> {
        let procedure = self.procedure(procedure_code)?;
        let id = crate::drafts::store::new_draft_id();
        let title = title.map(str::trim).filter(|t| !t.is_empty()).unwrap_or(&procedure.name.vi).to_string();
        self.store().write("creating a draft", |tx| {
            crate::drafts::store::insert(tx, &id, &procedure.code, &title)?;
            crate::drafts::backup::enqueue(tx, &id, Some(false)).map(|_| ())
        })?;
        self.core.outbox_wakeup();
        self.get(&id)?.map(|d| d.summary).ok_or(Error::NotFound { what: "draft" })
    }

    pub fn list(&self) -> Result<Vec<DraftSummary>> {
        crate::drafts::store::list(self.store())
    }

    pub fn get(&self, id: &str) -> Result<Option<Draft>> {
        crate::drafts::store::get(self.store(), id)
    }

    /// Saves one field (durable when this returns) and gives back its issues, for live checks.
    pub fn set_field(&self, id: &str, field_id: &str, value: FieldValue) -> Result<Vec<FieldIssue>> {
        let stamp = self.core.inner.clock.now(crate::store::now_millis().max(0) as u64);
        let procedures = &self.core.inner.procedures;
        let (procedure, backup_queued) =
            crate::drafts::store::set_field(self.store(), procedures, id, field_id, Some(&value), &stamp)?;
        if backup_queued {
            self.backup_soon();
        }
        let field = procedure.fields.iter().find(|f| f.id == field_id).ok_or(Error::NotFound { what: "form field" })?;
        Ok(validation::validate_field(field, Some(&value), CalendarDate::today_utc_plus_7()))
    }

    pub fn clear_field(&self, id: &str, field_id: &str) -> Result<()> {
        let stamp = self.core.inner.clock.now(crate::store::now_millis().max(0) as u64);
        let (_, backup_queued) =
            crate::drafts::store::set_field(self.store(), &self.core.inner.procedures, id, field_id, None, &stamp)?;
        if backup_queued {
            self.backup_soon();
        }
        Ok(())
    }

    /// The first edit after a backup went out queued a new one: the sender sends it a little
    /// later (`draft_backup_delay_ms`), so a burst of edits makes one upload and wakes the radio
    /// once. Without this the backup would wait for the sender's next wake-up.
    fn backup_soon(&self) {
        self.core.inner.backup_wakeup.notify_one();
    }

    /// Every issue of the draft against its procedure's form.
    pub fn validate(&self, id: &str) -> Result<Vec<FieldIssue>> {
        let draft = self.get(id)?.ok_or(Error::NotFound { what: "draft" })?;
        let procedure = self.procedure(&draft.summary.procedure_code)?;
        let attachments = crate::drafts::attachments::counts(self.store(), id)?;
        Ok(validation::validate(&procedure, &draft.values, &attachments, CalendarDate::today_utc_plus_7()))
    }

    /// The attachment rule `rule_id` of the draft's procedure.
    fn attachment_rule(&self, id: &str, rule_id: &str) -> Result<crate::catalog::model::AttachmentRule> {
        let draft = self.get(id)?.ok_or(Error::NotFound { what: "draft" })?;
        let procedure = self.procedure(&draft.summary.procedure_code)?;
        procedure.attachments.into_iter().find(|r| r.id == rule_id).ok_or(Error::NotFound { what: "attachment rule" })
    }

    /// Attaches the file at `path` under one of the procedure's attachment rules: checked by
    /// its content and size, streamed into the content-addressed store (never whole in memory).
    pub fn attach_file(&self, id: &str, rule_id: &str, path: &std::path::Path) -> Result<crate::drafts::attachments::Attachment> {
        let rule = self.attachment_rule(id, rule_id)?;
        crate::drafts::attachments::attach_path(self.store(), id, &rule, path)
    }

    /// Attaches a file given as bytes (a photo straight from the camera).
    pub fn attach_bytes(&self, id: &str, rule_id: &str, bytes: &[u8]) -> Result<crate::drafts::attachments::Attachment> {
        let rule = self.attachment_rule(id, rule_id)?;
        crate::drafts::attachments::attach(self.store(), id, &rule, bytes, bytes.len() as u64)
    }

    /// Removes a file from the draft; the file itself goes when nothing uses it any more.
    pub fn detach(&self, id: &str, rule_id: &str, sha256: &str) -> Result<()> {
        crate::drafts::attachments::detach(self.store(), id, rule_id, sha256)
    }

    /// The draft's files, by rule.
    pub fn attachments(&self, id: &str) -> Result<Vec<crate::drafts::attachments::Attachment>> {
        crate::drafts::attachments::list(self.store(), id)
    }

    pub fn rename(&self, id: &str, title: &str) -> Result<()> {
        crate::drafts::store::rename(self.store(), id, title.trim(), &self.stamp())?;
        self.core.outbox_wakeup();
        Ok(())
    }

    pub fn delete(&self, id: &str) -> Result<()> {
        crate::drafts::store::delete(self.store(), id, &self.stamp())?;
        self.core.outbox_wakeup();
        Ok(())
    }

    pub fn undelete(&self, id: &str) -> Result<()> {
        crate::drafts::store::undelete(self.store(), id, &self.stamp())?;
        self.core.outbox_wakeup();
        Ok(())
    }

    /// Checks the draft, then freezes it and queues its submission in one transaction, and
    /// wakes the sender. Offline it simply waits in the outbox. Returns the idempotency key.
    pub fn submit(&self, id: &str) -> Result<String> {
        let issues = self.validate(id)?;
        if !issues.is_empty() {
            return Err(Error::DraftInvalid { count: issues.len(), issues });
        }
        // The resident signs what is submitted (device key, with presence) before the submission's
        // transaction, which then checks the content is still the same. Anonymous reports and
        // a phone without a logged-in resident send no signature.
        let crate::drafts::commands::SubmissionContent { procedure_code, anonymous, values, attachments } =
            self.store().write("reading a draft to sign", |tx| crate::drafts::commands::content(tx, id))?;
        let session = self.core.session();
        let signed = match (anonymous, session.active_account()?) {
            (false, Some(account)) => {
                let procedure = self.procedure(&procedure_code)?;
                let prompt = crate::signing::dossier::prompt(&procedure.name.vi, &procedure.name.en);
                let keystore = session.keystore.as_ref();
                Some(crate::signing::dossier::sign(keystore, &account, &procedure_code, id, &values, &attachments, &prompt)?)
            }
            _ => None,
        };
        let key = self
            .store()
            .write("submitting a draft", |tx| crate::drafts::commands::submit_signed(tx, id, signed.as_ref()))?;
        self.core.outbox_wakeup();
        Ok(key)
    }

    /// Sends a hotline report anonymously (or not): the agency will not see who sent it, and
    /// the resident still follows the case. Only for reports, and only while the draft is
    /// editable.
    pub fn set_anonymous(&self, id: &str, anonymous: bool) -> Result<()> {
        let draft = self.get(id)?.ok_or(Error::NotFound { what: "draft" })?;
        if !draft.summary.state.is_editable() {
            return Err(Error::DraftLocked { state: draft.summary.state.as_str() });
        }
        if anonymous && self.procedure(&draft.summary.procedure_code)?.kind != ProcedureKind::Report {
            let issue = FieldIssue {
                field_id: "anonymous".into(),
                code: validation::IssueCode::UnknownField,
                message: crate::catalog::LocalizedText {
                    vi: "Chỉ phản ánh gửi đường dây nóng mới được gửi ẩn danh.".into(),
                    en: "Only reports to the hotline may be sent anonymously.".into(),
                },
            };
            return Err(Error::DraftInvalid { count: 1, issues: vec![issue] });
        }
        self.store().write("marking a draft anonymous", |tx| {
            tx.execute("UPDATE drafts SET anonymous = ?2 WHERE id = ?1", rusqlite::params![id, anonymous])
                .map_err(Error::db("marking a draft anonymous"))?;
            Ok(())
        })
    }

    /// Answers the agency's "more information needed" on a case: new values of the fields it
    /// asked for, checked here first (offline too), then queued in the outbox and sent exactly
    /// once. Returns the command's idempotency key.
    pub fn answer(&self, case_id: &str, values: std::collections::BTreeMap<String, FieldValue>) -> Result<String> {
        let case = self.cases()?.into_iter().find(|c| c.case_id == case_id).ok_or(Error::NotFound { what: "case" })?;
        if case.status != "needs_information" {
            return Err(Error::NoInformationRequested { status: case.status });
        }
        let procedure = self.procedure(&case.procedure_code)?;
        let today = CalendarDate::today_utc_plus_7();
        let mut issues = Vec::new();
        for (field_id, value) in &values {
            match procedure.fields.iter().find(|f| &f.id == field_id) {
                Some(field) if case.requested_fields.contains(field_id) => {
                    issues.extend(validation::validate_field(field, Some(value), today));
                }
                _ => issues.push(not_requested(field_id)),
            }
        }
        if !issues.is_empty() {
            return Err(Error::DraftInvalid { count: issues.len(), issues });
        }
        let key = self.store().write("answering a case", |tx| crate::drafts::commands::answer(tx, case_id, values))?;
        self.core.outbox_wakeup();
        Ok(key)
    }

    /// The resident's cases as last synced (number, status, timeline, due date), newest first.
    pub fn cases(&self) -> Result<Vec<crate::drafts::changes::CaseView>> {
        crate::drafts::changes::list(self.store())
    }

    /// The outbox commands about this draft, newest first (what the screen shows as its state).
    pub fn outbox(&self, id: &str) -> Result<Vec<OutboxItem>> {
        outbox::items(self.store(), Some(id))
    }
}

/// A field the agency did not ask for (the server would refuse it: `field_not_requested`).
fn not_requested(field_id: &str) -> FieldIssue {
    FieldIssue {
        field_id: field_id.to_string(),
        code: validation::IssueCode::UnknownField,
        message: crate::catalog::LocalizedText {
            vi: "Cơ quan không yêu cầu bổ sung thông tin này.".into(),
            en: "The agency did not ask for this information.".into(),
        },
    }
}

/// Login, session state and logout (see `docs/identity.md`).
#[derive(Clone)]
pub struct IdentityService {
    core: Core,
}

impl IdentityService {
    /// Starts a login: open the returned URL in the system browser. `redirect_uri` is where the
    /// browser comes back to the app (its private-use scheme, or loopback for the CLI).
    pub fn login_start(&self, redirect_uri: &str) -> Result<LoginRequest> {
        self.core.session().login_start(redirect_uri)
    }

    /// Finishes a login with the address the browser came back to.
    pub async fn login_finish(&self, callback_url: &str) -> Result<AccountInfo> {
        self.core.session().login_finish(callback_url).await
    }

    pub fn state(&self) -> Result<SessionState> {
        self.core.session().state()
    }

    /// Revokes the session on the server (when reachable) and wipes it here. Local drafts and
    /// cached data stay. Returns whether the server confirmed.
    pub async fn logout(&self) -> Result<bool> {
        self.core.session().logout().await
    }

    /// Who the server says is logged in (an authenticated call).
    pub async fn account(&self) -> Result<AccountInfo> {
        self.core.session().account().await
    }
}

/// Offline reads of the procedure catalog.
#[derive(Clone)]
pub struct CatalogService {
    core: Core,
}

impl CatalogService {
    pub fn list(&self, kind: Option<ProcedureKind>) -> Result<Vec<ProcedureSummary>> {
        catalog::queries::list(&self.core.inner.store, kind)
    }

    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<ProcedureSummary>> {
        catalog::queries::search(&self.core.inner.store, query, limit)
    }

    pub fn get(&self, code: &str) -> Result<Option<Procedure>> {
        catalog::queries::get(&self.core.inner.store, code)
    }

    pub fn status(&self) -> Result<CatalogStatus> {
        catalog::queries::status(&self.core.inner.store)
    }
}
