//! What every world's module shares: wit-bindgen gives each world its own
//! copy of the shared types, so the helpers on them are stamped into each.

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
