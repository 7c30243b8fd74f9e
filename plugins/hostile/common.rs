// The preamble every hostile test plugin shares: bindings, imports, and a
// `describe()` helper. Each crate includes it and implements `parse` its own way.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "parser",
});

#[allow(unused_imports)]
use exports::medmemory::plugin::document_parser::{Document, Guest, Parsed, TextSection};
#[allow(unused_imports)]
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
