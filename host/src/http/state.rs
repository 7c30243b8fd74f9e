//! What the handlers use: the domain services, the stores they read directly
//! for plain lists and lookups, and what only HTTP needs (rate limits, the
//! credential checker behind the [`Principal`](crate::auth::Principal)
//! extractor, the metrics renderer). Built once by the composition root.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use super::limits::RateLimits;
use crate::auth::Authenticator;
use crate::authz::Authz;
use crate::blobs::BlobStore;
use crate::config::Settings;
use crate::db::Db;
use crate::ingest::Ingest;
use crate::memory::{Forget, Memory};
use crate::ml::Models;
use crate::plugins::Plugins;

/// Everything a handler may use.
pub struct Services {
    /// The settings the process started with.
    pub settings: Arc<Settings>,
    /// The relational store.
    pub db: Db,
    /// Document bytes.
    pub blobs: Arc<BlobStore>,
    /// The live RBAC enforcer.
    pub authz: Authz,
    /// Credential checks.
    pub auth: Authenticator,
    /// Installed plugins and each clinic's choices.
    pub plugins: Arc<Plugins>,
    /// Patient memory: search.
    pub memory: Arc<Memory>,
    /// Answers: retrieval, generation, grounding.
    pub rag: Arc<crate::rag::Rag>,
    /// Evidence for a question, chosen by the clinic's retriever.
    pub retrieval: Arc<crate::retrieval::Retrieval>,
    /// Clinical rules: the clinic's CDS Hooks services.
    pub rules: Arc<crate::rules::Rules>,
    /// Document delete and patient erasure.
    pub forget: Arc<Forget>,
    /// Ingestion: the job worker and the indexing pipeline.
    pub ingest: Arc<Ingest>,
    /// The loaded models.
    pub models: Models,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Request rate limits.
    pub limits: RateLimits,
    /// Open job-event streams per caller.
    pub streams: Arc<super::jobs::StreamSlots>,
}

/// The axum state: a cheap clone of the shared [`Services`].
#[derive(Clone)]
pub struct AppState(pub Arc<Services>);

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}
