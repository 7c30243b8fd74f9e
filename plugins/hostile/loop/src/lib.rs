//! Never returns: must be stopped by fuel or the epoch deadline.
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
        info("hostile-loop")
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        let mut x = doc.content.len() as u64 | 1;
        loop {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            std::hint::black_box(x);
        }
    }
}
