//! Bindings and helpers for the `parser` world.

wit_bindgen::generate!({
    path: "../../wit",
    world: "parser",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "medmemory_plugin_sdk::parser",
});

pub use exports::medmemory::plugin::document_parser::{Document, Guest, Parsed, TextSection};

shared_helpers!();

impl PluginInfo {
    /// Describes a parser of `media_types`.
    pub fn parser(name: &str, version: &str, description: &str, media_types: &[&str]) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            kind: PluginKind::Parser,
            description: description.into(),
            media_types: media_types.iter().map(|m| (*m).to_owned()).collect(),
        }
    }
}

impl Document {
    /// The content as UTF-8 text (a leading byte-order mark is skipped),
    /// or `invalid-input`.
    pub fn utf8(&self) -> Result<&str, PluginError> {
        let text = std::str::from_utf8(&self.content)
            .map_err(|e| PluginError::invalid(format!("not UTF-8 text: {e}")))?;
        Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
    }

    /// Fails with `invalid-input` when the document exceeds `max` bytes.
    pub fn at_most(&self, max: usize) -> Result<(), PluginError> {
        if self.content.len() > max {
            return Err(PluginError::invalid(format!(
                "document is {} bytes; this parser accepts at most {max}",
                self.content.len()
            )));
        }
        Ok(())
    }
}

impl From<crate::text::Section> for TextSection {
    fn from(s: crate::text::Section) -> TextSection {
        TextSection {
            title: s.title,
            text: s.text,
            source: Span::bytes(s.start, s.end),
        }
    }
}

impl Parsed {
    /// Only text sections, no records.
    pub fn from_sections(sections: Vec<crate::text::Section>) -> Parsed {
        Parsed {
            records: Vec::new(),
            sections: sections.into_iter().map(Into::into).collect(),
            warnings: Vec::new(),
        }
    }
}
