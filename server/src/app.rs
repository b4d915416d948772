//! The router, its shared state and the server's life cycle (bind, serve, graceful shutdown).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde::Serialize;
use tower_http::trace::TraceLayer;

use crate::config::ServerConfig;
use crate::db::Db;
use crate::error::ApiError;
use crate::identity::{self, Identity};
use crate::{blobs, cases, catalog, drafts, openapi, signing, sync, tickets};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub identity: Arc<Identity>,
    /// Largest attachment upload, in bytes.
    pub max_blob_bytes: u64,
    /// Public holidays, for due dates in working days.
    pub holidays: Arc<crate::cases::holidays::Holidays>,
}

/// Every route: (method, path). The OpenAPI test checks each one is documented.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/openapi.json"),
    ("post", "/v1/sync/pull"),
    ("get", "/v1/catalog/procedures"),
    ("get", "/v1/catalog/procedures/{code}"),
    ("get", "/v1/auth/authorize"),
    ("get", "/v1/auth/callback"),
    ("post", "/v1/auth/token"),
    ("post", "/v1/auth/logout"),
    ("post", "/v1/cases"),
    ("post", "/v1/cases/{id}/answer"),
    ("get", "/v1/agency/cases"),
    ("get", "/v1/agency/cases/{id}"),
    ("post", "/v1/agency/cases/{id}/status"),
    ("get", "/v1/agency/cases/{id}/attachments/{sha256}"),
    ("get", "/v1/blobs/{sha256}"),
    ("get", "/v1/me"),
    ("post", "/v1/blobs"),
    ("patch", "/v1/blobs/{sha256}"),
    ("put", "/v1/drafts/{id}"),
    ("get", "/v1/tickets/products"),
    ("post", "/v1/tickets/purchases"),
    ("get", "/v1/tickets"),
    ("get", "/v1/operator/keys"),
    ("get", "/v1/operator/revocations"),
    ("post", "/v1/operator/taps"),
    ("post", "/v1/agency/signature-requests"),
    ("get", "/v1/agency/signature-requests"),
    ("get", "/v1/agency/signature-requests/{id}"),
    ("post", "/v1/agency/signature-requests/{id}/cancel"),
    ("get", "/v1/agency/signature-requests/{id}/bundle"),
    ("get", "/v1/agency/signature-requests/{id}/audit"),
    ("get", "/v1/agency/cases/{id}/signature-bundle"),
    ("get", "/v1/signature-requests/{id}/document"),
    ("post", "/v1/signature-requests/{id}/decision"),
    ("get", "/v1/me/device-keys"),
    ("post", "/v1/me/device-keys/{key_id}/revoke"),
    ("post", "/v1/me/credential"),
    ("get", "/v1/identity/credential-keys"),
];

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/sync/pull", post(sync::pull))
        .route("/v1/catalog/procedures", get(catalog::list))
        .route("/v1/catalog/procedures/{code}", get(catalog::get))
        .route("/v1/auth/authorize", get(identity::routes::authorize))
        .route("/v1/auth/callback", get(identity::routes::callback))
        .route("/v1/auth/token", post(identity::routes::token))
        .route("/v1/auth/logout", post(identity::routes::logout))
        .route("/v1/me", get(identity::routes::me))
        .route("/v1/blobs", post(blobs::offer))
        // The one route whose body may exceed the JSON limit: one attachment chunk.
        .route("/v1/blobs/{sha256}", patch(blobs::append).layer(DefaultBodyLimit::max(blobs::CHUNK_BYTES)).get(blobs::download))
        .route("/v1/drafts/{id}", put(drafts::backup))
        .route("/v1/cases", post(cases::submit))
        .route("/v1/cases/{id}/answer", post(cases::answer::answer))
        .route("/v1/agency/cases", get(cases::agency::list))
        .route("/v1/agency/cases/{id}", get(cases::agency::get))
        .route("/v1/tickets/products", get(tickets::products))
        .route("/v1/tickets/purchases", post(tickets::purchase))
        .route("/v1/tickets", get(tickets::list))
        .route("/v1/operator/keys", get(tickets::operator::keys))
        .route("/v1/operator/revocations", get(tickets::operator::revocation_list))
        // A full batch of taps (400) may pass the JSON limit.
        .route("/v1/operator/taps", post(tickets::operator::upload_taps).layer(DefaultBodyLimit::max(tickets::taps::MAX_BODY_BYTES)))
        .route("/v1/agency/cases/{id}/status", post(cases::agency::set_status))
        .route("/v1/agency/cases/{id}/attachments/{sha256}", get(cases::agency::attachment))
        .route("/v1/agency/signature-requests", post(signing::agency::create).get(signing::agency::list))
        .route("/v1/agency/signature-requests/{id}", get(signing::agency::get))
        .route("/v1/agency/signature-requests/{id}/cancel", post(signing::agency::cancel))
        .route("/v1/agency/signature-requests/{id}/bundle", get(signing::agency::download_bundle))
        .route("/v1/agency/signature-requests/{id}/audit", get(signing::agency::audit_trail))
        .route("/v1/agency/cases/{id}/signature-bundle", get(signing::dossier::case_bundle))
        .route("/v1/signature-requests/{id}/document", get(signing::resident::document))
        .route("/v1/signature-requests/{id}/decision", post(signing::resident::decide))
        .route("/v1/me/device-keys", get(identity::device_keys::list))
        .route("/v1/me/device-keys/{key_id}/revoke", post(identity::device_keys::revoke_route))
        .route("/v1/me/credential", post(identity::credential::issue))
        .route("/v1/identity/credential-keys", get(identity::credential::keys));
    if let Some(dev_idp) = state.identity.dev_idp_router() {
        app = app.nest_service("/dev-idp", dev_idp);
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.identity.clone(), identity::dpop_nonce_header))
        .layer(axum::middleware::from_fn_with_state(
            state.identity.rate_limiter.clone(),
            identity::ratelimit::limit_login_paths,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(request_timeout))
        // Log the route template, never the concrete path or query: they may carry identifiers.
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_else(|| "unmatched".into());
            tracing::info_span!("http", method = %req.method(), route = %route)
        }))
        .with_state(state)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    version: &'static str,
}

async fn health(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.db.ping().await?;
    Ok(Json(Health { status: "ok", database: state.db.backend(), version: env!("CARGO_PKG_VERSION") }))
}

/// A request still running after this long is answered with a typed 503 (and `Retry-After`),
/// so a phone retries later instead of holding its radio open.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn request_timeout(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(ApiError::unavailable("request timed out")),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
        "Phương thức không được hỗ trợ.",
    )
}

/// Connects to the database, migrates it, and seeds the demo catalog when asked and empty.
pub async fn prepare_db(config: &ServerConfig) -> anyhow_like::Result<Db> {
    let db = Db::connect(&config.database_url).await?;
    if config.seed_demo_data && catalog::store::count_all(&db).await? == 0 {
        let procedures = catalog::parse_catalog(catalog::DEMO_CATALOG)
            .map_err(|p| anyhow_like::Error(format!("demo catalog invalid: {}", p.join("; "))))?;
        let report = catalog::store::publish(&db, procedures).await?;
        tracing::info!(published = report.changed, "seeded the demo catalog");
    }
    Ok(db)
}

/// The database, then the identity state, which needs the bound address (the default public
/// URL and the development provider's issuer name it, and tests bind port 0).
pub async fn prepare(config: &ServerConfig, bound: SocketAddr) -> anyhow_like::Result<AppState> {
    let db = prepare_db(config).await?;
    blobs::spawn_cleanup(db.clone(), config.abandoned_upload_after);
    let identity = Identity::start(&db, &config.identity, bound).await.map_err(anyhow_like::Error)?;
    let this_year = congdan_core::drafts::validation::CalendarDate::today_utc_plus_7().year;
    if !config.holidays.covers(this_year) {
        tracing::warn!(year = this_year, "no public-holiday schedule for this year: due dates skip weekends and fixed-date holidays only (load one with --holidays)");
    }
    Ok(AppState { db, identity, max_blob_bytes: config.max_blob_bytes, holidays: Arc::new(config.holidays.clone()) })
}

async fn bind(config: &ServerConfig) -> anyhow_like::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow_like::Error(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener.local_addr().map_err(|e| anyhow_like::Error(e.to_string()))?;
    Ok((listener, addr))
}

/// Runs the server on `config.listen` until `shutdown` completes, then drains open requests.
pub async fn serve(config: ServerConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow_like::Result<()> {
    config.identity.check().map_err(anyhow_like::Error)?;
    let (listener, addr) = bind(&config).await?;
    let state = prepare(&config, addr).await?;
    tracing::info!(
        address = %addr,
        public_url = %state.identity.public_url,
        database = state.db.backend(),
        "congdan-server listening"
    );
    let app = router(state, config.max_body_bytes);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| anyhow_like::Error(format!("server failed: {e}")))
}

/// A server running in the background of this process (tests, benchmarks, the CLI's demos).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes open requests, and waits until the server is gone.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a server on `config.listen` (port 0 picks a free one) in the background.
pub async fn start(config: ServerConfig) -> anyhow_like::Result<RunningServer> {
    let (listener, addr) = bind(&config).await?;
    let state = prepare(&config, addr).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(state.clone(), config.max_body_bytes);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(RunningServer { addr, state, stop: Some(stop), task: Some(task) })
}

/// A minimal boxed error for start-up failures (configuration, database, port).
pub mod anyhow_like {
    #[derive(Debug)]
    pub struct Error(pub String);
    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Error {}
    impl From<crate::db::DbError> for Error {
        fn from(e: crate::db::DbError) -> Self {
            Error(e.to_string())
        }
    }
    pub type Result<T> = std::result::Result<T, Error>;
}
