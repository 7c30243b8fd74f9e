// The contract-version test parsers share this body; each crate includes it
// after generating its bindings from its own `wit/` (written by
// `cargo xtask plugins` from the real contract with the version changed).

use exports::medmemory::plugin::document_parser::{Document, Guest, Parsed, TextSection};
use medmemory::plugin::types::{PluginError, PluginInfo, PluginKind, Span};

/// `contract-minor` or `contract-major`, from the crate name.
const NAME: &str = env!("CARGO_PKG_NAME");

struct Versioned;

fn short_name() -> &'static str {
    NAME.trim_start_matches("medmemory-test-plugin-")
}

impl Guest for Versioned {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: short_name().into(),
            version: CONTRACT.into(),
            kind: PluginKind::Parser,
            description: "contract version test plugin".into(),
            media_types: vec![format!("application/x-{}", short_name())],
        }
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        Ok(Parsed {
            records: Vec::new(),
            sections: vec![TextSection {
                title: None,
                text: format!("{} bytes", doc.content.len()),
                source: Span {
                    start: 0,
                    end: doc.content.len() as u32,
                    page: None,
                },
            }],
            warnings: Vec::new(),
        })
    }
}

export!(Versioned);
