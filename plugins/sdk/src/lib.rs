//! # The MedMemory plugin SDK
//!
//! Write a MedMemory plugin in Rust: the bindings of the contract in
//! `wit/plugin.wit` (one module per world, behind a cargo feature) plus typed
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

/// Helpers every world's module gets for its own copy of the shared types.
macro_rules! shared_helpers {
    () => {
        pub use medmemory::plugin::types::{
            ClinicalRecord, Coding, PluginError, PluginInfo, PluginKind, Quantity, RecordKind,
            ReferenceRange, Span,
        };

        /// Logging to the host. Messages are counted and capped per call;
        /// never log patient data.
        pub mod log {
            use super::medmemory::plugin::log::{Level, log};

            /// Logs at debug level.
            pub fn debug(message: &str) {
                log(Level::Debug, message)
            }
            /// Logs at info level.
            pub fn info(message: &str) {
                log(Level::Info, message)
            }
            /// Logs at warn level.
            pub fn warn(message: &str) {
                log(Level::Warn, message)
            }
            /// Logs at error level.
            pub fn error(message: &str) {
                log(Level::Error, message)
            }
        }

        /// The calling clinic's settings for this plugin (read-only).
        pub mod config {
            /// One setting.
            pub fn get(key: &str) -> Option<String> {
                super::medmemory::plugin::config::get(key)
            }
            /// Every setting, sorted by key.
            pub fn all() -> Vec<(String, String)> {
                super::medmemory::plugin::config::all()
            }
        }

        impl PluginError {
            /// The input is malformed.
            pub fn invalid(message: impl Into<String>) -> PluginError {
                PluginError::InvalidInput(message.into())
            }
        }

        impl Coding {
            /// A code in `system`, with an optional display text.
            pub fn new(system: &str, code: &str, display: Option<&str>) -> Coding {
                Coding {
                    system: system.to_owned(),
                    code: code.to_owned(),
                    display: display.filter(|d| !d.is_empty()).map(str::to_owned),
                }
            }
        }

        impl Span {
            /// The bytes `[start, end)`.
            pub fn bytes(start: usize, end: usize) -> Span {
                Span {
                    start: start as u32,
                    end: end as u32,
                    page: None,
                }
            }
        }

        impl Quantity {
            /// A value as written, with its number parsed out when it is one
            /// (`7.2`, `<0.5` and `1,200` keep their text; only plain numbers
            /// get `value`).
            pub fn parse(text: &str, unit: Option<&str>) -> Quantity {
                let text = text.trim();
                Quantity {
                    value: $crate::values::number(text),
                    text: (!text.is_empty()).then(|| text.to_owned()),
                    unit: unit
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                        .map(str::to_owned),
                }
            }

            /// A number with a unit.
            pub fn number(value: f64, unit: Option<&str>) -> Quantity {
                Quantity {
                    value: Some(value),
                    text: None,
                    unit: unit.filter(|u| !u.is_empty()).map(str::to_owned),
                }
            }
        }

        impl ReferenceRange {
            /// Parses `4.0-5.6`, `3.5 - 5.0`, `<200`, `>=60`; keeps the text.
            pub fn parse(text: &str) -> ReferenceRange {
                let (low, high) = $crate::values::range(text);
                ReferenceRange {
                    low,
                    high,
                    text: Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
                }
            }
        }

        impl ClinicalRecord {
            /// An empty record of `kind` labelled `display`; fill it with the
            /// builder methods below.
            pub fn new(kind: RecordKind, display: impl Into<String>) -> ClinicalRecord {
                ClinicalRecord {
                    kind,
                    codes: Vec::new(),
                    display: display.into(),
                    status: None,
                    value: None,
                    reference_range: None,
                    interpretation: None,
                    effective: None,
                    effective_end: None,
                    details: Vec::new(),
                    source_id: None,
                    source: None,
                }
            }

            /// Adds a code.
            pub fn code(mut self, coding: Coding) -> Self {
                self.codes.push(coding);
                self
            }

            /// Sets the value.
            pub fn value(mut self, value: Quantity) -> Self {
                self.value = Some(value);
                self
            }

            /// Sets the status, if known.
            pub fn status(mut self, status: Option<impl Into<String>>) -> Self {
                self.status = status.map(Into::into);
                self
            }

            /// Sets when it happened (and ended), if known.
            pub fn effective(mut self, start: Option<String>, end: Option<String>) -> Self {
                self.effective = start;
                self.effective_end = end;
                self
            }

            /// Adds a detail, if it has a value.
            pub fn detail(mut self, name: &str, value: Option<impl Into<String>>) -> Self {
                if let Some(value) = value.map(Into::into).filter(|v: &String| !v.is_empty()) {
                    self.details.push((name.to_owned(), value));
                }
                self
            }

            /// Sets where it came from.
            pub fn source(mut self, span: Span) -> Self {
                self.source = Some(span);
                self
            }
        }
    };
}

/// Bindings and helpers for the `parser` world.
pub mod parser {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "parser",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "medmemory_plugin_sdk::parser",
    });

    pub use exports::medmemory::plugin::document_parser::{Document, Guest, Parsed, TextSection};

    shared_helpers!();

    impl PluginInfo {
        /// Describes a parser of `media_types`.
        pub fn parser(name: &str, version: &str, description: &str, media_types: &[&str]) -> Self {
            PluginInfo {
                name: name.into(),
                version: version.into(),
                kind: PluginKind::Parser,
                description: description.into(),
                media_types: media_types.iter().map(|m| (*m).to_owned()).collect(),
            }
        }
    }

    impl Document {
        /// The content as UTF-8 text (a leading byte-order mark is skipped),
        /// or `invalid-input`.
        pub fn utf8(&self) -> Result<&str, PluginError> {
            let text = std::str::from_utf8(&self.content)
                .map_err(|e| PluginError::invalid(format!("not UTF-8 text: {e}")))?;
            Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
        }

        /// Fails with `invalid-input` when the document exceeds `max` bytes.
        pub fn at_most(&self, max: usize) -> Result<(), PluginError> {
            if self.content.len() > max {
                return Err(PluginError::invalid(format!(
                    "document is {} bytes; this parser accepts at most {max}",
                    self.content.len()
                )));
            }
            Ok(())
        }
    }

    impl From<crate::text::Section> for TextSection {
        fn from(s: crate::text::Section) -> TextSection {
            TextSection {
                title: s.title,
                text: s.text,
                source: Span::bytes(s.start, s.end),
            }
        }
    }

    impl Parsed {
        /// Only text sections, no records.
        pub fn from_sections(sections: Vec<crate::text::Section>) -> Parsed {
            Parsed {
                records: Vec::new(),
                sections: sections.into_iter().map(Into::into).collect(),
                warnings: Vec::new(),
            }
        }
    }
}

/// Bindings and helpers for the `clinical-rule` world.
pub mod rule {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "clinical-rule",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "medmemory_plugin_sdk::rule",
    });

    pub use exports::medmemory::plugin::clinical_rules::{
        Action, ActionType, Card, CardSource, Guest, HookRequest, Indicator, Link, PatientContext,
        Service, Suggestion,
    };

    shared_helpers!();

    impl PluginInfo {
        /// Describes a clinical rule.
        pub fn clinical_rule(name: &str, version: &str, description: &str) -> Self {
            PluginInfo {
                name: name.into(),
                version: version.into(),
                kind: PluginKind::ClinicalRule,
                description: description.into(),
                media_types: Vec::new(),
            }
        }
    }

    impl Card {
        /// A card with a summary (cut to 140 characters), an indicator and a source.
        pub fn new(summary: &str, indicator: Indicator, source: &str) -> Card {
            Card {
                uuid: None,
                summary: summary.chars().take(140).collect(),
                indicator,
                detail: None,
                source: CardSource {
                    label: source.to_owned(),
                    url: None,
                    topic: None,
                },
                suggestions: Vec::new(),
                links: Vec::new(),
            }
        }

        /// Adds Markdown detail.
        pub fn detail(mut self, detail: impl Into<String>) -> Card {
            self.detail = Some(detail.into());
            self
        }
    }

    impl PatientContext {
        /// The newest record carrying `code` in `system`.
        pub fn latest(&self, system: &str, code: &str) -> Option<&ClinicalRecord> {
            self.records
                .iter()
                .filter(|r| r.codes.iter().any(|c| c.system == system && c.code == code))
                .max_by(|a, b| a.effective.cmp(&b.effective))
        }
    }
}

/// Bindings and helpers for the `retriever` world.
pub mod retriever {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "retriever",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "medmemory_plugin_sdk::retriever",
    });

    pub use exports::medmemory::plugin::evidence_retriever::{Guest, Query, Ranked};
    pub use medmemory::plugin::search::{Hit, SearchMode, search};

    shared_helpers!();

    impl PluginInfo {
        /// Describes a retriever.
        pub fn retriever(name: &str, version: &str, description: &str) -> Self {
            PluginInfo {
                name: name.into(),
                version: version.into(),
                kind: PluginKind::Retriever,
                description: description.into(),
                media_types: Vec::new(),
            }
        }
    }
}
