//! Opens a connection: imports wasi:sockets, so it must be refused at install.
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
        info("hostile-sockets")
    }

    fn parse(_doc: Document) -> Result<Parsed, PluginError> {
        let stream = std::net::TcpStream::connect("127.0.0.1:5432")
            .map_err(|e| PluginError::Internal(e.to_string()))?;
        Err(PluginError::Internal(format!("{stream:?}")))
    }
}
