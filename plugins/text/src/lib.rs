//! The `text` parser: plain text and Markdown in, titled sections out.
//!
//! The smallest useful plugin, and the one to copy: it describes itself, checks
//! its input and splits the text with the SDK's section splitter, which keeps
//! the byte span of every section so that search hits can cite it. It finds no
//! structured records: those come from format parsers such as FHIR or HL7.

use medmemory_plugin_sdk::parser::{Document, Guest, Parsed, PluginError, PluginInfo};
use medmemory_plugin_sdk::text;

/// The largest document this plugin accepts; the host may set a lower cap.
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// The parser; public so that native fuzz targets call it as the host does.
pub struct TextParser;

impl Guest for TextParser {
    fn describe() -> PluginInfo {
        PluginInfo::parser(
            "text",
            env!("CARGO_PKG_VERSION"),
            "Plain text and Markdown, split into titled sections.",
            &["text/plain", "text/markdown"],
        )
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        doc.at_most(MAX_BYTES)?;
        Ok(Parsed::from_sections(text::sections(doc.utf8()?)))
    }
}

// Exported from the component only: a native build (fuzz targets, tests)
// links no component export names.
#[cfg(target_arch = "wasm32")]
medmemory_plugin_sdk::parser::export!(TextParser);
