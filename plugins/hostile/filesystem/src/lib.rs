//! Reads a file: imports wasi:filesystem, so it must be refused at install.
include!("../../common.rs");

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        info("hostile-filesystem")
    }

    fn parse(_doc: Document) -> Result<Parsed, PluginError> {
        let secret = std::fs::read_to_string("/etc/passwd")
            .map_err(|e| PluginError::Internal(e.to_string()))?;
        Err(PluginError::Internal(secret))
    }
}
