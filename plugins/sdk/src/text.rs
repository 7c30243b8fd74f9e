//! Splitting free text into titled sections with byte spans.
//!
//! Plain Rust, no bindings: every kind of plugin can use it, and it is unit
//! tested natively.

/// A titled run of text and the byte range `[start, end)` it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The heading the text sits under, if any.
    pub title: Option<String>,
    /// The text, lines joined by single spaces.
    pub text: String,
    /// First byte in the source, inclusive.
    pub start: usize,
    /// Last byte in the source, exclusive.
    pub end: usize,
}

/// Splits `text` into sections at headings and blank lines.
///
/// A section starts at a Markdown heading (`# Title`), at a short line that ends
/// in a colon and reads like a label (`Medications:`), or after a blank line; a
/// heading carries over to the paragraphs below it.
pub fn sections(text: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut title: Option<String> = None;
    let mut body = Body::default();
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if let Some(heading) = heading(trimmed) {
            body.flush(&mut out, title.take());
            title = Some(heading.to_string());
        } else if trimmed.is_empty() {
            body.flush(&mut out, title.clone());
        } else {
            let lead = line.len() - line.trim_start().len();
            body.push(trimmed, start + lead, start + line.trim_end().len());
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
pub fn heading(line: &str) -> Option<&str> {
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

#[derive(Default)]
struct Body {
    text: String,
    start: usize,
    end: usize,
}

impl Body {
    fn push(&mut self, line: &str, start: usize, end: usize) {
        if self.text.is_empty() {
            self.start = start;
        } else {
            self.text.push(' ');
        }
        self.text.push_str(line);
        self.end = end;
    }

    fn flush(&mut self, out: &mut Vec<Section>, title: Option<String>) {
        if self.text.is_empty() {
            return;
        }
        out.push(Section {
            title,
            text: std::mem::take(&mut self.text),
            start: self.start,
            end: self.end,
        });
    }
}

/// Collapses runs of whitespace to single spaces and trims the ends.
pub fn squash_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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
        assert_eq!(
            &doc[got[1].start..got[1].end],
            "Type 2 diabetes since 2015."
        );
    }

    #[test]
    fn indented_lines_keep_exact_spans() {
        let doc = "  Indented note.\n";
        let got = sections(doc);
        assert_eq!(&doc[got[0].start..got[0].end], "Indented note.");
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
