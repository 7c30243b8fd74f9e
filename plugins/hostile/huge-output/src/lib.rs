//! Returns far more text than it was given: must hit the output limit.
include!("../../common.rs");

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        info("hostile-huge-output")
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        let end = doc.content.len() as u32;
        let sections = (0..64)
            .map(|i| TextSection {
                title: Some(format!("copy {i}")),
                text: "x".repeat(256 * 1024),
                source: Span {
                    start: 0,
                    end,
                    page: None,
                },
            })
            .collect();
        Ok(Parsed {
            records: Vec::new(),
            sections,
            warnings: Vec::new(),
        })
    }
}
