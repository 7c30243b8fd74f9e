//! Allocates without bound: must hit the memory cap.
include!("../../common.rs");

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
