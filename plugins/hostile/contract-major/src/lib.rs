//! A parser built against `medmemory:plugin@0.2.0`: `wit/` is written by
//! `cargo xtask plugins` from the real contract with the version changed.

wit_bindgen::generate!({
    path: "wit",
    world: "parser",
});

use exports::medmemory::plugin::document_parser::{Document, Guest, Parsed, TextSection};
use medmemory::plugin::types::{PluginError, PluginInfo, PluginKind, Span};

struct Versioned;

impl Guest for Versioned {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "contract-major".into(),
            version: "0.2.0".into(),
            kind: PluginKind::Parser,
            description: "contract version test plugin".into(),
            media_types: vec!["application/x-contract-major".into()],
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
