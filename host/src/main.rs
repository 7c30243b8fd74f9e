//! The `medmemory` binary: the server and its command line (see API.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use medmemory::app::App;
use medmemory::config::Settings;
use medmemory::db::Db;
use medmemory::db::audit::AuditEvent;
use medmemory::plugins::{LimitOverrides, Plugins};

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
    /// Rebuild the vector index from the database (after a model change, or
    /// when `/ready` asks for it). Run it while the server is stopped.
    Reindex {
        /// Only this clinic.
        #[arg(long)]
        clinic: Option<uuid::Uuid>,
    },
    /// Back up the database, the vectors, the blobs and the installed
    /// plugins into a new folder, while the servers run; or verify a backup.
    Backup(BackupArgs),
    /// Replace the database, the vectors and the blobs by a backup. Stop
    /// every server using them first.
    Restore {
        /// The backup folder.
        dir: PathBuf,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    /// The folder to create (it must be missing or empty).
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Check every file of a backup against its manifest.
    Verify {
        /// The backup folder.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it, alone, on stdout.
    Create(TokenArgs),
    /// List tokens (id, name, clinic, role, expiry, last use, revoked).
    List,
    /// Revoke a token with immediate effect.
    Revoke {
        /// The token's id.
        id: uuid::Uuid,
    },
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
    /// Vet, compile and record a component in the configured database (as an
    /// upload to `POST /plugins` would); clinics then enable it.
    Install {
        /// The `.wasm` component.
        file: PathBuf,
    },
    /// List the plugins recorded in the configured database.
    List,
    /// Run a component locally, without a server or database, and print its
    /// output with the fuel, time and peak memory it used.
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The `.wasm` component.
    file: PathBuf,
    /// The input: a document for parsers; a JSON hook request for clinical
    /// rules; `{"query": {...}, "chunks": [...]}` for retrievers.
    #[arg(long)]
    input: PathBuf,
    /// The media type handed to a parser; default: sniffed from the input.
    #[arg(long)]
    media_type: Option<String>,
    /// A setting for the plugin's `config` import, `key=value`; repeatable.
    #[arg(long = "config", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// Fuel budget (default: the host's).
    #[arg(long)]
    fuel: Option<u64>,
    /// Memory cap in MiB (default: the host's).
    #[arg(long)]
    memory_mib: Option<usize>,
    /// Deadline in milliseconds (default: the host's).
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Calls to make; the report gives their median and 99th percentile.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "expected key=value".to_owned())
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
            Command::Token(TokenCommand::List) => list_tokens(settings).await,
            Command::Token(TokenCommand::Revoke { id }) => revoke_token(settings, id).await,
            Command::Plugin(PluginCommand::Install { file }) => {
                install_plugin(settings, file).await
            }
            Command::Plugin(PluginCommand::List) => list_plugins(settings).await,
            Command::Reindex { clinic } => reindex(settings, clinic).await,
            Command::Backup(BackupArgs {
                command: Some(BackupCommand::Verify { dir }),
                ..
            }) => medmemory::cli::backup::verify_command(&dir).await,
            Command::Backup(BackupArgs {
                dir: Some(dir),
                command: None,
            }) => medmemory::cli::backup::backup_command(&settings, &dir).await,
            Command::Backup(_) => Err(anyhow::anyhow!(
                "give a folder to create, or `verify` and a backup folder"
            )),
            Command::Restore { dir } => {
                medmemory::cli::backup::restore_command(&settings, &dir).await
            }
            // Plugin calls block (WASI's sync bindings enter the runtime), so
            // they run on a blocking thread, as the server runs them.
            Command::Plugin(PluginCommand::Run(args)) => tokio::task::spawn_blocking(move || {
                medmemory::cli::plugin_run::run(
                    &settings,
                    &args.file,
                    &args.input,
                    args.media_type.as_deref(),
                    args.config.into_iter().collect(),
                    &LimitOverrides {
                        fuel: args.fuel,
                        memory_bytes: args.memory_mib.map(|m| m * 1024 * 1024),
                        deadline_ms: args.deadline_ms,
                        ..LimitOverrides::default()
                    },
                    args.repeat,
                )
            })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the plugin run stopped: {e}"))),
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
    app.ingest.prepare().await?;
    if let Some(secret) = app.bootstrap().await? {
        eprintln!("MedMemory bootstrap platform-admin token (shown once; store it now):");
        println!("{secret}");
    }
    app.start_background();
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(addr = %addr, backend = app.db().backend(), "listening");
    let router = medmemory::http::router(app.http_state());
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
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

async fn reindex(settings: Settings, clinic: Option<uuid::Uuid>) -> anyhow::Result<()> {
    let app = App::build(settings).await?;
    if !app.load_models().await {
        let why = app.engines.models.error().unwrap_or_default();
        anyhow::bail!("the embedding model is unavailable: {why}");
    }
    if let Some(clinic) = clinic {
        anyhow::ensure!(
            app.db().clinic(clinic).await?.is_some(),
            "no clinic {clinic}"
        );
    }
    let started = std::time::Instant::now();
    let (chunks, cached) = medmemory::ingest::maintenance::reindex(&app.ingest, clinic).await?;
    eprintln!(
        "reindexed {chunks} chunks ({cached} from the cache) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
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
    let mut audit = AuditEvent::now("cli", "token", "create", "succeeded");
    audit.clinic_id = clinic;
    let (_, secret) =
        medmemory::auth::tokens::issue(&db, &args.name, clinic, &role, None, &audit).await?;
    println!("{secret}");
    Ok(())
}

async fn offline_db(settings: &Settings) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let db = Db::connect(&settings.database_url()).await?;
    db.migrate().await?;
    Ok(db)
}

async fn list_tokens(settings: Settings) -> anyhow::Result<()> {
    let db = offline_db(&settings).await?;
    let mut after = None;
    loop {
        let page = db.tokens(None, true, after, 500).await?;
        for t in &page {
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_owned(), |t| t.to_rfc3339())
            };
            println!(
                "{}\t{}\t{}\t{}\texpires {}\tlast used {}\trevoked {}",
                t.id,
                t.name,
                t.clinic_id.map_or("platform".to_owned(), |c| c.to_string()),
                t.role,
                time(t.expires_at),
                time(t.last_used_at),
                time(t.revoked_at)
            );
        }
        after = page.last().map(|t| t.id);
        if page.len() < 500 {
            return Ok(());
        }
    }
}

async fn revoke_token(settings: Settings, id: uuid::Uuid) -> anyhow::Result<()> {
    let db = offline_db(&settings).await?;
    let token = db
        .token(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no token {id}"))?;
    let mut audit = AuditEvent::now("cli", "token", "delete", "succeeded");
    audit.clinic_id = token.clinic_id;
    db.revoke_token(id, &audit)
        .await?
        .ok_or_else(|| anyhow::anyhow!("token {id} is already revoked"))?;
    eprintln!("revoked {id}");
    Ok(())
}

/// The plugin platform over the configured database, without a server.
async fn offline_plugins(settings: &Settings) -> anyhow::Result<Plugins> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let db = Db::connect(&settings.database_url()).await?;
    db.migrate().await?;
    medmemory::app::plugins(settings, db)
}

async fn install_plugin(settings: Settings, file: PathBuf) -> anyhow::Result<()> {
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let plugins = offline_plugins(&settings).await?;
    let plugin = plugins
        .install(bytes, false, true)
        .await
        .map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
    let info = &plugin.info;
    println!(
        "{}\t{}\t{}\t{}",
        info.id,
        info.name,
        info.version,
        info.kind.as_str()
    );
    Ok(())
}

async fn list_plugins(settings: Settings) -> anyhow::Result<()> {
    let plugins = offline_plugins(&settings).await?;
    plugins.install_dir(&settings.plugins_dir()).await;
    for plugin in plugins.list(false).await? {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            plugin.id,
            plugin.name,
            plugin.version,
            plugin.kind,
            plugin.media_types.join(","),
            if plugin.first_party {
                "first-party"
            } else {
                "third-party"
            }
        );
    }
    Ok(())
}
