//! Returns far more text than it was given: must hit the output limit.
wit_bindgen::generate!({
    path: "../../../wit",
    world: "parser-plugin",
});

use exports::medmemory::plugin::parser::{Document, Guest, Parsed, TextSection};
use medmemory::plugin::types::{PluginError, PluginInfo, PluginKind, Span};

struct Hostile;

fn info(name: &str) -> PluginInfo {
    PluginInfo {
        name: name.into(),
        version: "0.1.0".into(),
        kind: PluginKind::Parser,
        description: "hostile test plugin".into(),
        media_types: vec!["application/x-hostile".into()],
    }
}

export!(Hostile);

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        info("hostile-huge-output")
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        let end = doc.content.len() as u32;
        let sections = (0..64)
            .map(|i| TextSection {
                title: Some(format!("copy {i}")),
                text: "x".repeat(256 * 1024),
                source: Span {
                    start: 0,
                    end,
                    page: None,
                },
            })
            .collect();
        Ok(Parsed {
            records: Vec::new(),
            sections,
            warnings: Vec::new(),
        })
    }
}
