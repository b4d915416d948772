//! `congdan-server`: serve the API, or manage the catalog.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use congdan_server::catalog;
use congdan_server::config::{parse_role_grants, sqlite_url, IdentityConfig, OidcProviderConfig, RateLimit, RoleGrant, ServerConfig};
use congdan_server::db::Db;

#[derive(Parser)]
#[command(name = "congdan-server", version, about = "The congdan API server")]
struct Cli {
    /// Database: postgres://user:pass@host/db, or sqlite://file. Default: a SQLite file in --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Where the default SQLite database lives.
    #[arg(long, env = "CONGDAN_DATA_DIR", default_value = "data", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CONGDAN_LISTEN", default_value = ServerConfig::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Publish the demo catalog when the catalog is empty (default: only on the embedded SQLite).
    #[arg(long)]
    seed: Option<bool>,
    /// The URL phones reach this server at (login callback, DPoP htu). Default: http://{listen address}.
    #[arg(long, env = "CONGDAN_PUBLIC_URL")]
    public_url: Option<String>,
    /// The OpenID Connect issuer (VNeID in production).
    #[arg(long, env = "CONGDAN_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// This server's client id at the provider.
    #[arg(long, env = "CONGDAN_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// The ID token claim holding the 12-digit national ID number.
    #[arg(long, env = "CONGDAN_OIDC_NATIONAL_ID_CLAIM", default_value = "national_id")]
    oidc_national_id_claim: String,
    /// Mount the development identity provider at /dev-idp (default: only on the embedded SQLite).
    #[arg(long, env = "CONGDAN_DEV_IDP")]
    dev_idp: Option<bool>,
    /// Access token lifetime in seconds (at most 600).
    #[arg(long, env = "CONGDAN_ACCESS_TOKEN_TTL", default_value_t = 600)]
    access_token_ttl: u64,
    /// Identity credential lifetime in seconds (1 hour to 90 days; phones renew in the last week).
    #[arg(long, env = "CONGDAN_CREDENTIAL_LIFETIME", default_value_t = 30 * 86_400)]
    credential_lifetime: u64,
    /// Seconds after a refresh token's use during which a retry with it still succeeds.
    #[arg(long, env = "CONGDAN_REFRESH_GRACE", default_value_t = 120)]
    refresh_grace: u64,
    /// Refresh token lifetime in seconds (default 30 days).
    #[arg(long, env = "CONGDAN_REFRESH_TOKEN_TTL", default_value_t = 30 * 86_400)]
    refresh_token_ttl: u64,
    /// Access token signing key rotation interval in seconds (default 7 days).
    #[arg(long, env = "CONGDAN_KEY_ROTATION", default_value_t = 7 * 86_400)]
    key_rotation: u64,
    /// Grant a role: NATIONAL_ID=agency:CODE or NATIONAL_ID=operator:CODE (repeatable).
    /// (Parsed by us, not by clap, whose error would repeat the number.)
    #[arg(long = "grant-role", value_name = "NATIONAL_ID=ROLE")]
    grant_role: Vec<String>,
    /// Another allowed app redirect URI (repeatable).
    #[arg(long = "app-redirect-uri")]
    app_redirect_uri: Vec<String>,
    /// Login endpoints: requests allowed at once per client address.
    #[arg(long, env = "CONGDAN_AUTH_RATE_BURST", default_value_t = 20)]
    auth_rate_burst: u32,
    /// Login endpoints: seconds to earn back one request.
    #[arg(long, env = "CONGDAN_AUTH_RATE_REFILL_SECS", default_value_t = 2.0)]
    auth_rate_refill_secs: f64,
    /// A load balancer or reverse proxy whose X-Forwarded-For names the client, as an address or
    /// CIDR block (repeatable; CONGDAN_TRUSTED_PROXIES takes a comma-separated list).
    #[arg(long = "trusted-proxy", env = "CONGDAN_TRUSTED_PROXIES", value_delimiter = ',', value_name = "CIDR",
          value_parser = clap::value_parser!(congdan_server::identity::client_address::IpNetwork))]
    trusted_proxy: Vec<congdan_server::identity::client_address::IpNetwork>,
    /// The published public-holiday schedule (one YYYY-MM-DD per line, # comments) for due
    /// dates; replaces the built-in Vietnamese calendar.
    #[arg(long, env = "CONGDAN_HOLIDAYS", value_name = "FILE")]
    holidays: Option<std::path::PathBuf>,
    /// Largest attachment a resident may upload, in bytes.
    #[arg(long, env = "CONGDAN_MAX_BLOB_BYTES", default_value_t = congdan_server::blobs::DEFAULT_MAX_BLOB_BYTES,
          value_parser = clap::value_parser!(u64).range(1..=1024 * 1024 * 1024))]
    max_blob_bytes: u64,
    /// Hours after which an upload never finished is removed (the phone starts it again).
    #[arg(long, env = "CONGDAN_ABANDONED_UPLOAD_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(u64).range(1..=24 * 365))]
    abandoned_upload_hours: u64,
}

#[derive(Subcommand)]
// Parsed once at start: the size of the serve arguments does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Serve the API (the default).
    Serve(ServeArgs),
    /// Manage the procedure catalog.
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Check the audit trails of signature requests.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Recompute a request's hash chain; exits non-zero if any stored entry was changed.
    Verify { request_id: String },
}

#[derive(Subcommand)]
enum CatalogAction {
    /// Publish procedures from a JSON file (a list of procedures; checked strictly).
    Import { file: PathBuf },
    /// Withdraw a procedure: phones hide it on their next sync.
    Withdraw { code: String },
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutdown signal received; finishing open requests");
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter(congdan_server::logging::from_env()).init();
    let cli = Cli::parse();
    let embedded = cli.database_url.is_none();
    let database_url = cli.database_url.clone().unwrap_or_else(|| sqlite_url(&cli.data_dir.join("congdan-server.db")));
    let result = match cli.command {
        None => run_serve(cli.serve, database_url, embedded).await,
        Some(Command::Serve(args)) => run_serve(args, database_url, embedded).await,
        Some(Command::Catalog { action }) => run_catalog(action, &database_url).await,
        Some(Command::Audit { action: AuditAction::Verify { request_id } }) => run_audit_verify(&request_id, &database_url).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("congdan-server: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_serve(args: ServeArgs, database_url: String, embedded: bool) -> Result<(), String> {
    let mut config = ServerConfig::embedded(std::path::Path::new("."));
    config.listen = args.listen;
    config.database_url = database_url;
    config.seed_demo_data = args.seed.unwrap_or(embedded);
    config.max_blob_bytes = args.max_blob_bytes;
    config.abandoned_upload_after = std::time::Duration::from_secs(args.abandoned_upload_hours * 3600);
    config.identity = identity_config(&args, embedded)?;
    if let Some(path) = &args.holidays {
        let text = std::fs::read_to_string(path).map_err(|e| format!("--holidays {}: {e}", path.display()))?;
        config.holidays = congdan_server::cases::holidays::Holidays::parse(&text)
            .map_err(|e| format!("--holidays {}: {e}", path.display()))?;
    }
    congdan_server::serve(config, shutdown_signal()).await.map_err(|e| e.to_string())
}

fn identity_config(args: &ServeArgs, embedded: bool) -> Result<IdentityConfig, String> {
    let dev_idp = args.dev_idp.unwrap_or(embedded);
    let mut identity = if embedded && dev_idp { IdentityConfig::embedded() } else { IdentityConfig::production() };
    identity.dev_idp = dev_idp;
    identity.public_url = args.public_url.clone();
    identity.oidc = match (&args.oidc_issuer, &args.oidc_client_id) {
        (Some(issuer), Some(client_id)) => Some(OidcProviderConfig {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            // Environment only, so it never shows in a process list.
            client_secret: std::env::var("CONGDAN_OIDC_CLIENT_SECRET")
                .map_err(|_| "CONGDAN_OIDC_CLIENT_SECRET must be set with --oidc-issuer".to_string())?,
        }),
        (None, None) => None,
        _ => return Err("--oidc-issuer and --oidc-client-id go together".into()),
    };
    identity.national_id_claim = args.oidc_national_id_claim.clone();
    identity.access_token_ttl_secs = args.access_token_ttl;
    identity.refresh_grace_secs = args.refresh_grace;
    identity.credential_lifetime_secs = args.credential_lifetime;
    identity.refresh_token_ttl_secs = args.refresh_token_ttl;
    identity.key_rotation_secs = args.key_rotation;
    identity.role_grants =
        args.grant_role.iter().map(|g| g.parse::<RoleGrant>()).collect::<Result<_, _>>().map_err(|e| format!("--grant-role: {e}"))?;
    if let Ok(env) = std::env::var("CONGDAN_ROLE_GRANTS") {
        identity.role_grants.extend(parse_role_grants(&env).map_err(|e| format!("CONGDAN_ROLE_GRANTS: {e}"))?);
    }
    identity.app_redirect_uris = args.app_redirect_uri.clone();
    identity.auth_rate_limit = RateLimit { burst: args.auth_rate_burst, refill_secs: args.auth_rate_refill_secs };
    identity.trusted_proxies = args.trusted_proxy.clone();
    identity.check()?;
    Ok(identity)
}

async fn run_audit_verify(request_id: &str, database_url: &str) -> Result<(), String> {
    let db = Db::connect(database_url).await.map_err(|e| e.to_string())?;
    let (entries, v) = congdan_server::signing::audit::check(&db, request_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no signature request {request_id}"))?;
    for e in &entries {
        println!("{:>3}  {}  {:<14} {}", e.seq, e.at, e.kind, congdan_core::crypto::hex(&e.hash));
    }
    if v.valid {
        println!("audit trail intact: {} entries", v.entries);
        Ok(())
    } else {
        Err(format!(
            "audit trail BROKEN at entry {}: {}",
            v.broken_at.unwrap_or_default(),
            v.problem.unwrap_or_default()
        ))
    }
}

async fn run_catalog(action: CatalogAction, database_url: &str) -> Result<(), String> {
    let db = Db::connect(database_url).await.map_err(|e| e.to_string())?;
    match action {
        CatalogAction::Import { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let procedures = catalog::parse_catalog(&text)
                .map_err(|p| format!("{} is not a valid catalog:\n  {}", file.display(), p.join("\n  ")))?;
            let report = catalog::store::publish(&db, procedures).await.map_err(|e| e.to_string())?;
            println!("published {} changed, {} unchanged", report.changed, report.unchanged);
        }
        CatalogAction::Withdraw { code } => {
            if catalog::store::withdraw(&db, &code).await.map_err(|e| e.to_string())? {
                println!("withdrew {code}");
            } else {
                return Err(format!("{code} is not an active procedure"));
            }
        }
    }
    Ok(())
}
