//! `{{name}}`: a MedMemory parser plugin.
//!
//! Scaffolded by `cargo xtask plugin new parser {{name}}`. It indexes the text
//! of a document in sections and turns lines such as `HbA1c: 7.2 %` into lab
//! observations. Change `describe()` and `parse_text()` to handle your format.
//!
//! - Test it natively: `cargo test`
//! - Build the component: `cargo build --release --target wasm32-wasip2`
//! - Try it: `medmemory plugin run <target>/wasm32-wasip2/release/{{crate}}.wasm --input doc.txt --media-type text/x-{{name}}`
//! - Install it: `medmemory plugin install <the .wasm>` or `POST /api/v1/plugins`

use medmemory_plugin_sdk::parser::{
    ClinicalRecord, Coding, Document, Guest, Parsed, PluginError, PluginInfo, Quantity,
    RecordKind, Span,
};
use medmemory_plugin_sdk::{systems, text};

/// The largest document this plugin accepts; the host may set a lower cap.
const MAX_BYTES: usize = 8 * 1024 * 1024;

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo::parser(
            "{{name}}",
            env!("CARGO_PKG_VERSION"),
            "Lab lines (`HbA1c: 7.2 %`) as observations, all text as sections.",
            &["text/plain", "text/x-{{name}}"],
        )
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        doc.at_most(MAX_BYTES)?;
        parse_text(doc.utf8()?)
    }
}

medmemory_plugin_sdk::parser::export!(Plugin);

/// Sections of the whole text, plus one observation per `HbA1c:` line.
pub fn parse_text(text: &str) -> Result<Parsed, PluginError> {
    let mut parsed = Parsed::from_sections(text::sections(text));
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let Some((label, value)) = line.trim_end().split_once(':') else {
            continue;
        };
        if !label.trim().eq_ignore_ascii_case("hba1c") {
            continue;
        }
        let mut parts = value.split_whitespace();
        let number = parts.next().unwrap_or_default();
        let unit = parts.next();
        parsed.records.push(
            ClinicalRecord::new(RecordKind::Observation, "Hemoglobin A1c")
                .code(Coding::new(systems::LOINC, "4548-4", Some("Hemoglobin A1c")))
                .value(Quantity::parse(number, unit))
                .source(Span::bytes(start, start + line.trim_end().len())),
        );
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_lines_become_observations() {
        let doc = "Visit note\nHbA1c: 7.2 %\nFeeling well.\n";
        let parsed = parse_text(doc).unwrap();
        assert_eq!(parsed.records.len(), 1);
        let record = &parsed.records[0];
        assert_eq!(record.value.as_ref().unwrap().value, Some(7.2));
        let span = record.source.unwrap();
        assert_eq!(&doc[span.start as usize..span.end as usize], "HbA1c: 7.2 %");
        assert!(!parsed.sections.is_empty());
    }
}
