//! Allocates without bound: must hit the memory cap.
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
        info("hostile-memory-bomb")
    }

    fn parse(_doc: Document) -> Result<Parsed, PluginError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![7u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}
