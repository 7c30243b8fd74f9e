//! The composition root: builds every store and engine once and hands them to
//! the HTTP layer as one shared [`AppState`].

use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::authz::Authz;
use crate::config::Settings;
use crate::db::Db;
use crate::ingest::Worker;
use crate::ingest::blobs::BlobStore;
use crate::memory::VectorStore;
use crate::ml::Embedder;
use crate::plugins::{PluginHost, Plugins, Registry};

/// How often each instance checks the database for policy changes made
/// elsewhere (the CLI, another instance).
const POLICY_POLL: Duration = Duration::from_secs(2);

/// Everything a request handler may use.
pub struct App {
    /// The settings the process started with.
    pub settings: Settings,
    /// The relational store.
    pub db: Db,
    /// The live RBAC enforcer.
    pub authz: Authz,
    /// Installed plugins and the sandbox that runs them.
    pub plugins: Arc<Plugins>,
    /// The vector index.
    pub vectors: VectorStore,
    /// Document bytes.
    pub blobs: BlobStore,
    /// Wakes the ingestion worker.
    pub worker: Worker,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Request rate limits.
    pub limits: crate::http::limits::RateLimits,
    /// The OIDC access-token verifier, when an issuer is configured.
    pub oidc: Option<Arc<crate::auth::oidc::Oidc>>,
    embedder: OnceLock<Arc<Embedder>>,
    model_error: Mutex<Option<String>>,
    index_problems: Mutex<Vec<String>>,
}

/// The axum state: a cheap clone of the shared [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl App {
    /// Opens the stores, applies migrations, loads policies and plugins.
    /// The embedding model loads in the background; `/ready` reports it.
    pub async fn build(settings: Settings) -> anyhow::Result<Arc<App>> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data folder {}", settings.data_dir.display()))?;
        let db = Db::connect(&settings.database_url())
            .await
            .context("connecting to the database")?;
        db.migrate().await.context("applying migrations")?;
        let authz = Authz::load(db.clone()).await.context("loading policies")?;
        let vectors = VectorStore::open(&settings.vector_uri())
            .await
            .context("opening the vector store")?;
        let host = PluginHost::new(settings.plugin_limits())
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("starting the plugin engine")?;
        let registry = Arc::new(Registry::new(Arc::new(host), settings.plugin_cache_dir()));
        let plugins = Arc::new(Plugins::new(
            registry,
            db.clone(),
            settings.plugin_store_dir(),
            settings.plugin_breaker(),
        ));
        let first_party = plugins.install_dir(&settings.plugins_dir()).await;
        let count = plugins
            .load_recorded()
            .await
            .context("loading installed plugins")?;
        tracing::info!(first_party, "first-party plugins installed at start");
        tracing::info!(count, "plugins installed at start");
        let oidc = match settings.oidc().map_err(|e| anyhow::anyhow!(e))? {
            Some(oidc) => Some(Arc::new(crate::auth::oidc::Oidc::new(oidc)?)),
            None => None,
        };
        Ok(Arc::new(App {
            oidc,
            blobs: BlobStore::open(&settings.blob_url())?,
            metrics: crate::telemetry::metrics(),
            limits: crate::http::limits::RateLimits {
                principal: crate::http::limits::Limiter::per_minute(settings.rate_limit_per_minute),
                address: crate::http::limits::Limiter::per_minute(
                    settings.rate_limit_address_per_minute,
                ),
            },
            worker: Worker::default(),
            embedder: OnceLock::new(),
            model_error: Mutex::new(None),
            index_problems: Mutex::new(Vec::new()),
            settings,
            db,
            authz,
            plugins,
            vectors,
        }))
    }

    /// Brings SQL, blobs and vectors into agreement after whatever stopped the
    /// last process, and checks each vector table against the loaded model.
    /// Run before the server listens.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        let sweep = crate::ingest::maintenance::sweep_orphans(self)
            .await
            .context("reconciling vectors and blobs with the database")?;
        if sweep != Default::default() {
            tracing::warn!(
                orphan_vectors = sweep.orphan_vectors,
                orphan_blobs = sweep.orphan_blobs,
                erasures = sweep.erasures,
                "repaired state left by an interrupted process"
            );
        }
        self.check_index().await
    }

    /// Re-checks the vector tables against the loaded model (for `/ready`).
    pub async fn check_index(&self) -> anyhow::Result<()> {
        let problems = crate::ingest::maintenance::index_problems(self).await?;
        for problem in &problems {
            tracing::error!(problem = %problem, "vector index does not match this server");
        }
        *self
            .index_problems
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = problems;
        Ok(())
    }

    /// Why the vector index cannot be used as it is, if it cannot.
    pub fn index_problems(&self) -> Vec<String> {
        self.index_problems
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The embedding model, once loaded.
    pub fn embedder(&self) -> Option<Arc<Embedder>> {
        self.embedder.get().cloned()
    }

    /// Why the model is not loaded, if it failed.
    pub fn model_error(&self) -> Option<String> {
        self.model_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the embedding model off the async runtime.
    pub async fn load_model(self: &Arc<Self>) {
        let dir = self.settings.models_dir();
        let loaded = tokio::task::spawn_blocking(move || Embedder::load(&dir)).await;
        match loaded {
            Ok(Ok(embedder)) => {
                let _ = self.embedder.set(Arc::new(embedder));
                tracing::info!(model = crate::ml::MODEL_ID, "embedding model loaded");
                self.worker.wake();
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "embedding model unavailable");
                *self.model_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            }
            Err(e) => tracing::error!(error = %e, "model loader panicked"),
        }
    }

    /// Starts the background tasks: model load, job worker, policy sync, and
    /// the identity provider's keys.
    pub fn start_background(self: &Arc<Self>) {
        if let Some(oidc) = &self.oidc {
            tokio::spawn(oidc.clone().keep_fresh());
        }
        let app = self.clone();
        tokio::spawn(async move {
            app.load_model().await;
            match app
                .db
                .requeue_running_jobs(crate::ingest::MAX_INTERRUPTIONS)
                .await
            {
                Ok(n) if n > 0 => {
                    tracing::warn!(jobs = n, "requeued jobs interrupted by a restart")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "could not requeue interrupted jobs"),
            }
            if app.embedder().is_some() && app.index_problems().is_empty() {
                match crate::ingest::maintenance::index_missing(&app).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(
                        chunks = n,
                        "indexed committed chunks missing from the vector index"
                    ),
                    Err(e) => tracing::error!(error = %e, "could not index missing chunks"),
                }
            }
            app.worker.clone().run(app.clone()).await;
        });
        let app = self.clone();
        tokio::spawn(async move {
            let mut seen = app.db.policy_fingerprint().await.ok();
            loop {
                tokio::time::sleep(POLICY_POLL).await;
                let Ok(now) = app.db.policy_fingerprint().await else {
                    continue;
                };
                if seen.as_ref() != Some(&now) {
                    match app.authz.reload().await {
                        Ok(()) => seen = Some(now),
                        Err(e) => tracing::error!(error = %e, "policy reload failed"),
                    }
                }
            }
        });
    }

    /// On first start with an empty database, issues the one-time bootstrap
    /// platform-admin token and returns its secret.
    pub async fn bootstrap(&self) -> anyhow::Result<Option<String>> {
        if !self.db.has_no_credentials().await? {
            return Ok(None);
        }
        let (_, secret) = crate::auth::tokens::issue(
            &self.db,
            "bootstrap",
            None,
            "platform-admin",
            None,
            &crate::db::audit::AuditEvent::now("system", "token", "create", "succeeded"),
        )
        .await?;
        self.authz.reload().await?;
        Ok(Some(secret))
    }
}
