//! MedMemory: a searchable, explainable memory of each patient for clinics.
//!
//! Data flows one way: [`http`] -> ([`auth`], [`authz`]) -> domain modules
//! ([`ingest`]) -> stores ([`db`], [`memory`]) and engines ([`plugins`],
//! [`ml`]). Stores and engines never call back up into `http`.

pub mod app;
pub mod auth;
pub mod authz;
pub mod bench;
pub mod config;
pub mod db;
pub mod fhir;
pub mod http;
pub mod ingest;
pub mod memory;
pub mod ml;
pub mod plugins;
pub mod telemetry;
