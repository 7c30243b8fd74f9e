//! Never returns: must be stopped by fuel or the epoch deadline.
include!("../../common.rs");

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
