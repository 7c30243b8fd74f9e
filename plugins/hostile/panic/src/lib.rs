//! Panics: must trap, not crash the host.
wit_bindgen::generate!({
    path: "../../../wit",
    world: "parser-plugin",
});

use exports::medmemory::plugin::parser::{Document, Guest, Parsed};
use medmemory::plugin::types::{PluginError, PluginInfo, PluginKind};

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
        info("hostile-panic")
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        panic!("hostile plugin panicked on {} bytes", doc.content.len());
    }
}
