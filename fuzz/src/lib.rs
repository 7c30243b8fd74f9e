//! What every parser target checks: a parse returns, never panics, and every
//! span it hands the host lies inside the document (`start <= end <= len`),
//! as the WIT contract promises and citations rely on.

use medmemory_plugin_sdk::parser::{Document, Guest, Parsed};

/// Runs parser `P` on `bytes` as the host would, with `media_type`, and
/// checks its output.
pub fn parse<P: Guest>(media_type: &str, bytes: &[u8]) {
    let document = Document {
        media_type: media_type.to_owned(),
        content: bytes.to_vec(),
    };
    if let Ok(parsed) = P::parse(document) {
        check(&parsed, bytes.len());
    }
}

/// Panics (a finding) when an output span falls outside the document.
pub fn check(parsed: &Parsed, len: usize) {
    let inside = |start: u32, end: u32| start <= end && end as usize <= len;
    for record in &parsed.records {
        if let Some(span) = &record.source {
            assert!(
                inside(span.start, span.end),
                "record span {span:?} of {len} bytes"
            );
        }
    }
    for section in &parsed.sections {
        let span = &section.source;
        assert!(
            inside(span.start, span.end),
            "section span {span:?} of {len} bytes"
        );
    }
}
