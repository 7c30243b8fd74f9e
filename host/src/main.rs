//! The `medmemory` binary: the server and its command line (see API.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use medmemory::app::{App, AppState};
use medmemory::config::Settings;
use medmemory::db::Db;
use medmemory::plugins::{PluginHost, Registry};

#[derive(Parser)]
#[command(
    name = "medmemory",
    version,
    about = "A searchable, explainable memory of each patient."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage service API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it, alone, on stdout.
    Create(TokenArgs),
}

#[derive(Args)]
struct TokenArgs {
    /// A label for the token.
    #[arg(long)]
    name: String,
    /// A platform-wide admin token.
    #[arg(long, conflicts_with_all = ["clinic", "role"])]
    platform_admin: bool,
    /// The clinic to bind the token to.
    #[arg(long, requires = "role")]
    clinic: Option<uuid::Uuid>,
    /// The role in that clinic: clinic-admin, clinician or auditor.
    #[arg(long, requires = "clinic")]
    role: Option<String>,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Vet and compile a component, then copy it into the plugins folder.
    Install {
        /// The `.wasm` component.
        file: PathBuf,
    },
    /// List the plugins in the plugins folder.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("medmemory: invalid settings: {e}");
            return ExitCode::from(2);
        }
    };
    medmemory::telemetry::init_logs(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("medmemory: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::Token(TokenCommand::Create(args)) => create_token(settings, args).await,
            Command::Plugin(PluginCommand::Install { file }) => install_plugin(settings, file),
            Command::Plugin(PluginCommand::List) => list_plugins(settings),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medmemory: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bind = settings.bind;
    let app = App::build(settings).await?;
    if let Some(secret) = app.bootstrap().await? {
        eprintln!("MedMemory bootstrap platform-admin token (shown once; store it now):");
        println!("{secret}");
    }
    app.start_background();
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(addr = %addr, backend = app.db.backend(), "listening");
    let router = medmemory::http::router(AppState(app));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let db = Db::connect(&settings.database_url()).await?;
    db.migrate().await?;
    eprintln!("migrations applied ({})", db.backend());
    Ok(())
}

async fn create_token(settings: Settings, args: TokenArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let db = Db::connect(&settings.database_url()).await?;
    db.migrate().await?;
    medmemory::authz::Authz::load(db.clone()).await?;
    let (clinic, role) = match (args.platform_admin, args.clinic, args.role) {
        (true, None, None) => (None, "platform-admin".to_owned()),
        (false, Some(clinic), Some(role)) => {
            anyhow::ensure!(
                ["clinic-admin", "clinician", "auditor"].contains(&role.as_str()),
                "--role must be clinic-admin, clinician or auditor"
            );
            anyhow::ensure!(db.clinic(clinic).await?.is_some(), "no clinic {clinic}");
            (Some(clinic), role)
        }
        _ => anyhow::bail!("give --platform-admin, or --clinic and --role"),
    };
    let (_, secret) = medmemory::auth::tokens::issue(&db, &args.name, clinic, &role).await?;
    println!("{secret}");
    Ok(())
}

fn offline_registry(settings: &Settings) -> anyhow::Result<Registry> {
    let host = PluginHost::new(settings.plugin_limits()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    Ok(Registry::new(Arc::new(host), settings.plugin_cache_dir()))
}

fn install_plugin(settings: Settings, file: PathBuf) -> anyhow::Result<()> {
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let registry = offline_registry(&settings)?;
    let plugin = registry
        .install(&bytes)
        .map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
    let dir = settings.plugins_dir();
    std::fs::create_dir_all(&dir)?;
    let target = dir.join(format!("{}.wasm", plugin.info.name));
    std::fs::write(&target, &bytes)?;
    println!(
        "{} {} {} -> {}",
        plugin.info.name,
        plugin.info.version,
        plugin.info.id,
        target.display()
    );
    Ok(())
}

fn list_plugins(settings: Settings) -> anyhow::Result<()> {
    let registry = offline_registry(&settings)?;
    registry.install_dir(&settings.plugins_dir())?;
    for plugin in registry.list() {
        let info = &plugin.info;
        println!(
            "{}\t{}\t{}\t{}\t{}",
            info.name,
            info.version,
            info.kind,
            info.media_types.join(","),
            info.id
        );
    }
    Ok(())
}
