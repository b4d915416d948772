//! `congdan-server`: serve the API, or manage the catalog.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use congdan_server::catalog;
use congdan_server::config::{sqlite_url, ServerConfig};
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
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve(ServeArgs),
    /// Manage the procedure catalog.
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info".into()),
        )
        .init();
    let cli = Cli::parse();
    let embedded = cli.database_url.is_none();
    let database_url = cli.database_url.clone().unwrap_or_else(|| sqlite_url(&cli.data_dir.join("congdan-server.db")));
    let result = match cli.command {
        None => run_serve(cli.serve, database_url, embedded).await,
        Some(Command::Serve(args)) => run_serve(args, database_url, embedded).await,
        Some(Command::Catalog { action }) => run_catalog(action, &database_url).await,
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
    congdan_server::serve(config, shutdown_signal()).await.map_err(|e| e.to_string())
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
