//! # The MedMemory plugin SDK
//!
//! Write a MedMemory plugin in Rust: the bindings of the contract in
//! `wit/plugin.wit` (one module per world: `parser`, `rule`, `retriever`) plus typed
//! helpers for the records, spans, codes and cards plugins exchange with the
//! host.
//!
//! ```ignore
//! use medmemory_plugin_sdk::parser::{Document, Guest, Parsed, PluginError, PluginInfo};
//!
//! struct Mine;
//!
//! impl Guest for Mine {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::parser("mine", env!("CARGO_PKG_VERSION"), "What it parses.", &["text/plain"])
//!     }
//!     fn parse(doc: Document) -> Result<Parsed, PluginError> {
//!         let text = doc.utf8()?;
//!         Ok(Parsed::from_sections(medmemory_plugin_sdk::text::sections(text)))
//!     }
//! }
//!
//! medmemory_plugin_sdk::parser::export!(Mine);
//! ```
//!
//! A component implements exactly one world: the one whose `export!` macro it
//! calls. The other modules cost nothing (wit-bindgen keeps unused imports out
//! of the component). `plugins/README.md` walks through the whole loop, from
//! `cargo xtask plugin new` to an installed plugin.

#[macro_use]
mod shared;

pub mod parser;
pub mod retriever;
pub mod rule;
pub mod text;
pub mod values;

/// Code system URIs, as FHIR names them.
pub mod systems {
    /// LOINC: laboratory and clinical observations.
    pub const LOINC: &str = "http://loinc.org";
    /// SNOMED CT: clinical terms.
    pub const SNOMED: &str = "http://snomed.info/sct";
    /// RxNorm: medications.
    pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
    /// ICD-10-CM: diagnoses.
    pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";
    /// UCUM: units of measure.
    pub const UCUM: &str = "http://unitsofmeasure.org";
    /// CVX: vaccines.
    pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";
}
