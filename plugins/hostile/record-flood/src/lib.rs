//! Returns fifty thousand one-character records: tiny in bytes, huge in rows and
//! embeddings. Must hit the record-count limit.
include!("../../common.rs");

use medmemory::plugin::types::{ClinicalRecord, RecordKind};

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        info("hostile-record-flood")
    }

    fn parse(_doc: Document) -> Result<Parsed, PluginError> {
        let records = (0..50_000)
            .map(|_| ClinicalRecord {
                kind: RecordKind::Note,
                codes: Vec::new(),
                display: "x".into(),
                status: None,
                value: None,
                reference_range: None,
                interpretation: None,
                effective: None,
                effective_end: None,
                details: Vec::new(),
                source_id: None,
                source: None,
            })
            .collect();
        Ok(Parsed {
            records,
            sections: Vec::new(),
            warnings: Vec::new(),
        })
    }
}
