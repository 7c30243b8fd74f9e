//! The composition root: builds the stores and the engines once, the domain
//! services over them, and hands each layer only what it uses. The HTTP layer
//! gets its [`AppState`]; background work (model load, the job worker, the
//! policy sync, the identity provider's keys) is started here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::auth::Authenticator;
use crate::auth::oidc::{Oidc, OidcSettings};
use crate::authz::Authz;
use crate::blobs::BlobStore;
use crate::config::Settings;
use crate::db::Db;
use crate::http::limits::{Limiter, RateLimits};
use crate::http::{AppState, Services};
use crate::ingest::{Ingest, WorkerPolicy};
use crate::memory::{Forget, Memory, VectorStore};
use crate::ml::Models;
use crate::plugins::{BreakerPolicy, Limits, PluginHost, Plugins, Registry};
use crate::rag::{AnswerPolicy, Generator, Rag};
use crate::retrieval::Retrieval;
use crate::rules::Rules;

/// How often each instance checks the database for policy changes made
/// elsewhere (the CLI, another instance).
const POLICY_POLL: Duration = Duration::from_secs(2);

/// Where data lives: SQL (the source of truth), the vector index, the bytes.
pub struct Stores {
    /// The relational store.
    pub db: Db,
    /// The vector index.
    pub vectors: Arc<VectorStore>,
    /// Document bytes.
    pub blobs: Arc<BlobStore>,
}

/// What computes: the plugin sandbox and the models.
pub struct Engines {
    /// Installed plugins and the sandbox that runs them.
    pub plugins: Arc<Plugins>,
    /// The models, loaded in the background.
    pub models: Models,
}

/// The whole process, assembled.
pub struct App {
    /// The settings the process started with.
    pub settings: Arc<Settings>,
    /// The stores.
    pub stores: Stores,
    /// The engines.
    pub engines: Engines,
    /// The live RBAC enforcer.
    pub authz: Authz,
    /// Patient memory: search.
    pub memory: Arc<Memory>,
    /// Document delete and patient erasure.
    pub forget: Arc<Forget>,
    /// Ingestion: worker, pipeline, upkeep.
    pub ingest: Arc<Ingest>,
    /// Answers: retrieval, generation, grounding.
    pub rag: Arc<Rag>,
    /// Evidence for a question, chosen by the clinic's retriever.
    pub retrieval: Arc<Retrieval>,
    /// Clinical rules on arriving records: alerts.
    pub rules: Arc<Rules>,
    /// The OIDC access-token verifier, when an issuer is configured.
    pub oidc: Option<Arc<Oidc>>,
}

/// The plugin platform over `db` with the host's limits from `settings`.
pub fn plugins(settings: &Settings, db: Db) -> anyhow::Result<Plugins> {
    let host = PluginHost::new(Limits::from_settings(settings))
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .context("starting the plugin engine")?;
    let registry = Arc::new(Registry::new(Arc::new(host), settings.plugin_cache_dir()));
    Ok(Plugins::new(
        registry,
        db,
        settings.plugin_store_dir(),
        BreakerPolicy::from_settings(settings),
    ))
}

impl App {
    /// Opens the stores, applies migrations, loads policies and plugins.
    /// The embedding model loads in the background; `/ready` reports it.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data folder {}", settings.data_dir.display()))?;
        let db = Db::connect(&settings.database_url())
            .await
            .context("connecting to the database")?;
        db.migrate().await.context("applying migrations")?;
        let authz = Authz::load(db.clone()).await.context("loading policies")?;
        let vectors = Arc::new(
            VectorStore::open(&settings.vector_uri())
                .await
                .context("opening the vector store")?,
        );
        let blobs = Arc::new(BlobStore::open(&settings.blob_url())?);
        let plugins = Arc::new(plugins(&settings, db.clone())?);
        let first_party = plugins.install_dir(&settings.plugins_dir()).await;
        let count = plugins
            .load_recorded()
            .await
            .context("loading installed plugins")?;
        tracing::info!(first_party, "first-party plugins installed at start");
        tracing::info!(count, "plugins installed at start");
        let oidc = match OidcSettings::from_settings(&settings).map_err(|e| anyhow::anyhow!(e))? {
            Some(oidc) => Some(Arc::new(Oidc::new(oidc)?)),
            None => None,
        };
        let models = Models::default();
        let memory = Arc::new(Memory::new(db.clone(), vectors.clone(), models.clone()));
        let forget = Arc::new(Forget::new(db.clone(), vectors.clone(), blobs.clone()));
        let ingest = Arc::new(Ingest::new(
            db.clone(),
            blobs.clone(),
            plugins.clone(),
            vectors.clone(),
            models.clone(),
            forget.clone(),
            WorkerPolicy::from_settings(&settings),
        ));
        let generator = Generator::from_settings(&settings, models.clone())?;
        let retrieval = Arc::new(Retrieval::new(db.clone(), memory.clone(), plugins.clone()));
        let rules = Arc::new(Rules::new(db.clone(), plugins.clone()));
        let rag = Arc::new(Rag::new(
            db.clone(),
            retrieval.clone(),
            generator,
            AnswerPolicy::from_settings(&settings),
        ));
        Ok(App {
            rag,
            retrieval,
            rules,
            settings: Arc::new(settings),
            stores: Stores { db, vectors, blobs },
            engines: Engines { plugins, models },
            authz,
            memory,
            forget,
            ingest,
            oidc,
        })
    }

    /// The relational store.
    pub fn db(&self) -> &Db {
        &self.stores.db
    }

    /// Loads the models (off the async runtime); returns whether the
    /// embedder is usable.
    pub async fn load_models(&self) -> bool {
        self.engines.models.load(self.settings.models_dir()).await
    }

    /// What the HTTP layer serves with.
    pub fn http_state(&self) -> AppState {
        let settings = &self.settings;
        AppState(Arc::new(Services {
            settings: settings.clone(),
            db: self.stores.db.clone(),
            blobs: self.stores.blobs.clone(),
            authz: self.authz.clone(),
            auth: Authenticator::new(self.stores.db.clone(), self.oidc.clone()),
            plugins: self.engines.plugins.clone(),
            memory: self.memory.clone(),
            rag: self.rag.clone(),
            retrieval: self.retrieval.clone(),
            rules: self.rules.clone(),
            forget: self.forget.clone(),
            ingest: self.ingest.clone(),
            models: self.engines.models.clone(),
            metrics: crate::telemetry::metrics(),
            limits: RateLimits {
                principal: Limiter::per_minute(settings.rate_limit_per_minute),
                address: Limiter::per_minute(settings.rate_limit_address_per_minute),
            },
            streams: Default::default(),
        }))
    }

    /// Starts the background tasks: model load then the job worker, the
    /// policy sync, and the identity provider's keys.
    pub fn start_background(&self) {
        if let Some(oidc) = &self.oidc {
            tokio::spawn(oidc.clone().keep_fresh());
        }
        tokio::spawn(self.rules.clone().listen(self.ingest.arrivals()));
        let ingest = self.ingest.clone();
        let models = self.engines.models.clone();
        let dir = self.settings.models_dir();
        let local_generator = matches!(self.rag.generator(), Generator::Local(_));
        tokio::spawn(async move {
            if models.load(dir.clone()).await {
                ingest.wake();
            }
            // The local generator loads after the embedder, which ingestion
            // and `/ready` wait for; `/ask` says 503 until it is loaded.
            if local_generator {
                let models = models.clone();
                tokio::spawn(async move { models.load_llm(dir).await });
            }
            // Works jobs until the process ends.
            ingest.resume().await;
        });
        tokio::spawn(self.authz.clone().keep_in_sync(POLICY_POLL));
        tokio::spawn(self.forget.clone().keep_finishing());
    }

    /// On first start with an empty database, issues the one-time bootstrap
    /// platform-admin token and returns its secret.
    pub async fn bootstrap(&self) -> anyhow::Result<Option<String>> {
        let db = self.db();
        if !db.has_no_credentials().await? {
            return Ok(None);
        }
        let (_, secret) = crate::auth::tokens::issue(
            db,
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
