//! The `text` parser: plain text and Markdown in, titled sections out.
//!
//! A section starts at a Markdown heading (`# Title`), at a line that ends in a
//! colon and looks like a heading (`Medications:`), or after a blank line. Each
//! section keeps the byte span it came from, so search hits can cite it. It finds
//! no structured records: those come from format parsers such as FHIR or HL7.

wit_bindgen::generate!({
    path: "../../wit",
    world: "parser-plugin",
});

use exports::medmemory::plugin::parser::{Document, Guest, Parsed, TextSection};
use medmemory::plugin::types::{PluginError, PluginInfo, PluginKind, Span};

/// The largest document this plugin accepts; the host may set a lower cap.
const MAX_BYTES: usize = 16 * 1024 * 1024;

struct TextParser;

impl Guest for TextParser {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "text".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Parser,
            description: "Plain text and Markdown, split into titled sections.".into(),
            media_types: vec!["text/plain".into(), "text/markdown".into()],
        }
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        if doc.content.len() > MAX_BYTES {
            return Err(PluginError::InvalidInput(format!(
                "document is {} bytes; this parser accepts at most {MAX_BYTES}",
                doc.content.len()
            )));
        }
        let text = std::str::from_utf8(&doc.content)
            .map_err(|e| PluginError::InvalidInput(format!("not UTF-8 text: {e}")))?;
        Ok(Parsed {
            records: Vec::new(),
            sections: sections(text),
            warnings: Vec::new(),
        })
    }
}

export!(TextParser);

/// Splits `text` into sections at headings and blank lines.
pub fn sections(text: &str) -> Vec<TextSection> {
    let mut out = Vec::new();
    let mut title: Option<String> = None;
    let mut body = SectionBody::default();
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if let Some(heading) = heading(trimmed) {
            body.flush(&mut out, title.take());
            title = Some(heading.to_string());
        } else if trimmed.is_empty() {
            // A blank line ends a paragraph; the heading carries over to the next.
            body.flush(&mut out, title.clone());
        } else {
            body.push(trimmed, start, start + line.trim_end().len());
        }
    }
    body.flush(&mut out, title);
    out
}

/// Words that open sentences, not headings (`The patient reports:`).
const SENTENCE_STARTS: [&str; 12] = [
    "the", "a", "an", "she", "he", "they", "we", "i", "it", "this", "there", "patient",
];

/// A Markdown heading (`## Plan`) or a short label ending in a colon
/// (`Medications:`, `History of present illness:`).
fn heading(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix('#') {
        let title = rest.trim_start_matches('#').trim();
        return (!title.is_empty()).then_some(title);
    }
    let title = line.strip_suffix(':')?.trim();
    let mut words = title.split_whitespace();
    let first = words.next()?;
    let short = title.len() <= 60 && words.count() < 4;
    let label_like = first.chars().next().is_some_and(char::is_uppercase)
        && !SENTENCE_STARTS.contains(&first.to_lowercase().as_str())
        && !title.contains(['.', ':', ';']);
    (short && label_like).then_some(title)
}

/// The lines of the section being built, with the byte span they cover.
#[derive(Default)]
struct SectionBody {
    text: String,
    start: usize,
    end: usize,
}

impl SectionBody {
    fn push(&mut self, line: &str, start: usize, end: usize) {
        if self.text.is_empty() {
            self.start = start;
        } else {
            self.text.push(' ');
        }
        self.text.push_str(line);
        self.end = end;
    }

    /// Emits the section if it has text.
    fn flush(&mut self, out: &mut Vec<TextSection>, title: Option<String>) {
        if self.text.is_empty() {
            return;
        }
        out.push(TextSection {
            title,
            text: std::mem::take(&mut self.text),
            source: Span {
                start: self.start as u32,
                end: self.end as u32,
                page: None,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_and_paragraphs_become_sections() {
        let doc = "Intro line.\n# History\nType 2 diabetes since 2015.\n\nMedications:\nMetformin 500 mg\ntwice daily\n\nTaken with food.\n";
        let got = sections(doc);
        let view: Vec<(Option<&str>, &str)> = got
            .iter()
            .map(|s| (s.title.as_deref(), s.text.as_str()))
            .collect();
        assert_eq!(
            view,
            vec![
                (None, "Intro line."),
                (Some("History"), "Type 2 diabetes since 2015."),
                (Some("Medications"), "Metformin 500 mg twice daily"),
                (Some("Medications"), "Taken with food."),
            ]
        );
        let first = &got[1].source;
        assert_eq!(
            &doc[first.start as usize..first.end as usize],
            "Type 2 diabetes since 2015."
        );
    }

    #[test]
    fn sentences_ending_in_colons_are_not_headings() {
        assert_eq!(heading("The patient reports the following:"), None);
        assert_eq!(heading("She reports:"), None);
        assert_eq!(
            heading("History of present illness:"),
            Some("History of present illness")
        );
        assert_eq!(heading("Plan:"), Some("Plan"));
        assert_eq!(heading("## Assessment"), Some("Assessment"));
    }
}
