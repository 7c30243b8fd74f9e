//! Opens a connection: imports wasi:sockets, so it must be refused at install.
include!("../../common.rs");

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
