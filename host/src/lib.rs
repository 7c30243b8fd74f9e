//! MedMemory: a searchable, explainable memory of each patient for clinics.
//!
//! Data flows one way, and `tests/suite/architecture.rs` checks it:
//!
//! | layer | modules | may use |
//! |---|---|---|
//! | composition | [`app`], [`cli`] | everything |
//! | interface | [`http`], beside it [`auth`] and [`authz`] | the layers below |
//! | domain | [`ingest`], [`memory`], [`retrieval`], [`rag`], [`rules`], [`fhir`] | stores, engines, foundation |
//! | stores and engines | [`db`], [`blobs`], [`plugins`], [`ml`] | foundation |
//! | foundation | [`config`], [`telemetry`] | nothing of ours |
//!
//! Within a layer, modules may use each other as long as no cycle forms.

pub mod app;
pub mod auth;
pub mod authz;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod db;
pub mod fhir;
pub mod http;
pub mod ingest;
pub mod memory;
pub mod plugins;
pub mod rag;
pub mod retrieval;
pub mod rules;
pub mod telemetry;

/// The models: a crate of their own, built optimised (see the workspace
/// manifest), re-exported here as the `ml` engine.
pub use medmemory_ml as ml;
