//! Sleeps for an hour (`std::thread::sleep`, i.e. a monotonic-clock timer and
//! `wasi:io/poll`), again and again. It claims `text/plain`, so a clinic that
//! enables it sends its notes here. The host's frozen clock makes every sleep
//! return at once, so fuel or the deadline stop it like any other loop.
include!("../../common.rs");

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            media_types: vec!["text/plain".into(), "application/x-hostile".into()],
            ..info("hostile-sleep")
        }
    }

    fn parse(_doc: Document) -> Result<Parsed, PluginError> {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
