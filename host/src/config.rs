//! Settings: `medmemory.toml` (optional), overridden by `MEDMEMORY_*` environment
//! variables, with embedded defaults that run everything under `./data`.
//! Parsed once at start into typed values; a bad setting stops the process.
//!
//! Foundation: uses nothing of MedMemory's own; each module turns the settings
//! it needs into its own types (`plugins::Limits::from_settings`, ...).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Every setting, with defaults filled in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Listen address of the API.
    pub bind: SocketAddr,
    /// The data folder for everything embedded.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default `sqlite://<data>/medmemory.db`.
    pub database_url: Option<String>,
    /// Vector store location; default `<data>/vectors`.
    pub vector_uri: Option<String>,
    /// Document blob store: a folder, or `s3://bucket[/prefix]` for
    /// S3-compatible object storage (configured by the `AWS_*` variables);
    /// default `<data>/blobs`.
    pub blob_url: Option<String>,
    /// Model folder; default `<data>/models`.
    pub models_dir: Option<PathBuf>,
    /// Plugins installed at start; default `<data>/plugins`.
    pub plugins_dir: Option<PathBuf>,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: usize,
    /// Log filter, e.g. `info` or `medmemory=debug`.
    pub log: String,
    /// Fuel budget of one plugin call.
    pub plugin_fuel: u64,
    /// Memory cap of one plugin instance, in bytes.
    pub plugin_memory_bytes: usize,
    /// Wall-clock deadline of one plugin call, in milliseconds.
    pub plugin_deadline_ms: u64,
    /// Largest output accepted from one plugin call, in bytes of text.
    pub plugin_max_output_bytes: usize,
    /// Most records one parse may return.
    pub plugin_max_records: usize,
    /// Most text sections one parse may return.
    pub plugin_max_sections: usize,
    /// Consecutive plugin failures that open its circuit breaker.
    pub plugin_breaker_threshold: u32,
    /// How long an open breaker refuses calls, in milliseconds.
    pub plugin_breaker_cooldown_ms: u64,
    /// Ingestion jobs this process runs at once.
    pub ingest_workers: usize,
    /// Ingestion jobs of one clinic running at once across every instance,
    /// so one clinic's uploads (or a stuck plugin) never hold every worker.
    pub ingest_jobs_per_clinic: u32,
    /// How long a claimed job stays its worker's without a renewal, in
    /// seconds; a crashed instance's jobs are taken over after this.
    pub job_lease_secs: u64,
    /// Vectors and blobs that no committed row names are removed at start
    /// only once older than this, in seconds: another instance may be
    /// between writing them and committing. 0 is safe with one instance.
    pub sweep_grace_secs: u64,
    /// Requests a minute per credential (expensive routes count 5).
    pub rate_limit_per_minute: u32,
    /// Requests a minute per client address.
    pub rate_limit_address_per_minute: u32,
    /// The public base URL clients call, e.g. `https://mm.example.org`
    /// (behind a proxy, what the proxy serves). CDS clients sign the exact
    /// URL they call into their JWT's `aud`; unset: `http://` and the
    /// request's `Host`.
    pub public_url: Option<String>,
    /// How long a CDS service call may take, in milliseconds: the rule
    /// runs under this deadline and the answer carries the cards it has.
    pub cds_deadline_ms: u64,
    /// The OIDC issuer URL; unset: only service API tokens are accepted.
    pub oidc_issuer: Option<String>,
    /// The API's audience, required with an issuer.
    pub oidc_audience: Option<String>,
    /// The `typ` header access tokens must carry; empty: not checked.
    pub oidc_token_type: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 300).
    pub oidc_leeway_secs: u64,
    /// How often the provider's keys are refreshed, in seconds.
    pub oidc_jwks_refresh_secs: u64,
    /// The least time between two key refetches caused by unknown key ids,
    /// in milliseconds.
    pub oidc_jwks_refetch_min_ms: u64,
    /// Who writes answers: `local` (SmolLM2 on burn, in this process),
    /// `openai` (an OpenAI-compatible chat-completions server) or `none`.
    pub generator: String,
    /// The server's base URL, with `generator = "openai"`.
    pub generator_url: Option<String>,
    /// The model name sent to the server.
    pub generator_model: Option<String>,
    /// The bearer key sent to the server (from the environment, preferably).
    pub generator_api_key: Option<String>,
    /// Longest answer, in tokens.
    pub answer_max_tokens: usize,
    /// Evidence items one answer may use.
    pub answer_evidence: usize,
    /// Characters of one evidence item placed in the prompt; with
    /// `answer_evidence`, the evidence budget that bounds time to first token.
    pub answer_evidence_chars: usize,
    /// The least cosine similarity between the question and its best
    /// evidence; below it the answer is refused without calling the model.
    pub answer_min_relevance: f32,
    /// Answers generated at once by this process.
    pub answer_concurrency: usize,
    /// Questions waiting for a generation slot; more are refused with 503.
    pub answer_queue: usize,
    /// Prompt and completion tokens one clinic may spend per hour, across
    /// every instance; more are refused with 429.
    pub answer_tokens_per_clinic_hour: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            vector_uri: None,
            blob_url: None,
            models_dir: None,
            plugins_dir: None,
            max_upload_bytes: 25 * 1024 * 1024,
            log: "info".into(),
            plugin_fuel: 2_000_000_000,
            plugin_memory_bytes: 256 * 1024 * 1024,
            plugin_deadline_ms: 10_000,
            plugin_max_output_bytes: 32 * 1024 * 1024,
            plugin_max_records: 20_000,
            plugin_max_sections: 5_000,
            plugin_breaker_threshold: 5,
            plugin_breaker_cooldown_ms: 60_000,
            ingest_workers: 2,
            ingest_jobs_per_clinic: 1,
            job_lease_secs: 30,
            sweep_grace_secs: 600,
            rate_limit_per_minute: 600,
            rate_limit_address_per_minute: 1200,
            public_url: None,
            cds_deadline_ms: 450,
            oidc_issuer: None,
            oidc_audience: None,
            oidc_token_type: "at+jwt".into(),
            oidc_leeway_secs: 30,
            oidc_jwks_refresh_secs: 300,
            oidc_jwks_refetch_min_ms: 10_000,
            generator: "local".into(),
            generator_url: None,
            generator_model: None,
            generator_api_key: None,
            answer_max_tokens: 160,
            answer_evidence: 5,
            answer_evidence_chars: 400,
            answer_min_relevance: 0.2,
            answer_concurrency: 1,
            answer_queue: 8,
            answer_tokens_per_clinic_hour: 500_000,
        }
    }
}

impl Settings {
    /// Loads settings from `medmemory.toml` (if present) and the environment.
    pub fn load() -> Result<Settings, Box<figment::Error>> {
        Self::load_from(Path::new("medmemory.toml"))
    }

    /// Loads settings from the given file (if present) and the environment.
    pub fn load_from(file: &Path) -> Result<Settings, Box<figment::Error>> {
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("MEDMEMORY_"))
            .extract()
            .map_err(Box::new)
    }

    /// The relational database URL.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("medmemory.db").display()))
    }

    /// The vector store location.
    pub fn vector_uri(&self) -> String {
        self.vector_uri
            .clone()
            .unwrap_or_else(|| self.data_dir.join("vectors").display().to_string())
    }

    /// The model folder.
    pub fn models_dir(&self) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("models"))
    }

    /// The folder of plugins installed at start.
    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("plugins"))
    }

    /// The content-addressed blob store: a folder or an `s3://` URL.
    pub fn blob_url(&self) -> String {
        self.blob_url
            .clone()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| self.data_dir.join("blobs").display().to_string())
    }

    /// Where installed components are kept, by SHA-256.
    pub fn plugin_store_dir(&self) -> PathBuf {
        self.data_dir.join("plugin-store")
    }

    /// The host-owned cache of compiled plugins.
    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache").join("plugins")
    }
}
