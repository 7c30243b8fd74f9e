//! Panics: must trap, not crash the host.
include!("../../common.rs");

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        info("hostile-panic")
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        panic!("hostile plugin panicked on {} bytes", doc.content.len());
    }
}
