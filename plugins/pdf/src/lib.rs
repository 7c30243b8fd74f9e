//! The `pdf` parser: the text layer of a PDF, one or more sections per page.
//!
//! Uses `lopdf` to read the document and extract each page's text; the text is
//! split into sections with the SDK's splitter and every section carries its
//! 1-based page number. A PDF without a text layer (a scan) is not an error but
//! gives no sections and a clear warning, so nobody mistakes it for an empty
//! document; pages without text in an otherwise textual PDF are listed in a
//! warning too. Encrypted PDFs are refused.

use medmemory_plugin_sdk::parser::{
    Document, Guest, Parsed, PluginError, PluginInfo, Span, TextSection,
};
use medmemory_plugin_sdk::text;

/// The largest document this plugin accepts; the host may set a lower cap.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// Pages beyond this are not read (and a warning says so).
const MAX_PAGES: usize = 2_000;

/// The warning for a PDF without any text.
pub const NO_TEXT_LAYER: &str =
    "no text layer: this PDF looks scanned; nothing was indexed (run OCR first)";

/// The parser; public so that native fuzz targets call it as the host does.
pub struct PdfParser;

impl Guest for PdfParser {
    fn describe() -> PluginInfo {
        PluginInfo::parser(
            "pdf",
            env!("CARGO_PKG_VERSION"),
            "The text layer of PDFs, in page-numbered sections; warns about scans without text.",
            &["application/pdf"],
        )
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        doc.at_most(MAX_BYTES)?;
        parse_pdf(&doc.content)
    }
}

// Exported from the component only: a native build (fuzz targets, tests)
// links no component export names.
#[cfg(target_arch = "wasm32")]
medmemory_plugin_sdk::parser::export!(PdfParser);

/// Extracts the text of every page.
pub fn parse_pdf(bytes: &[u8]) -> Result<Parsed, PluginError> {
    let pdf = lopdf::Document::load_mem(bytes)
        .map_err(|e| PluginError::invalid(format!("not a readable PDF: {e}")))?;
    if pdf.is_encrypted() {
        return Err(PluginError::Unsupported("the PDF is encrypted".into()));
    }
    let pages = pdf.get_pages();
    if pages.is_empty() {
        return Err(PluginError::invalid("the PDF has no pages"));
    }
    let whole = Span::bytes(0, bytes.len());
    let mut out = Parsed {
        records: Vec::new(),
        sections: Vec::new(),
        warnings: Vec::new(),
    };
    let mut blank = Vec::new();
    for (&number, _) in pages.iter().take(MAX_PAGES) {
        let page_text = pdf.extract_text(&[number]).unwrap_or_default();
        let sections = text::sections(&page_text);
        if sections.is_empty() {
            blank.push(number);
        }
        for section in sections {
            out.sections.push(TextSection {
                title: section.title,
                text: section.text,
                source: Span {
                    page: Some(number),
                    ..whole
                },
            });
        }
    }
    if out.sections.is_empty() {
        out.warnings.push(NO_TEXT_LAYER.into());
    } else if !blank.is_empty() {
        let list: Vec<String> = blank.iter().map(u32::to_string).collect();
        out.warnings
            .push(format!("page(s) {} have no text layer", list.join(", ")));
    }
    if pages.len() > MAX_PAGES {
        out.warnings.push(format!(
            "only the first {MAX_PAGES} of {} pages were read",
            pages.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_invalid_input() {
        for bad in [
            &b"%PDF-1.4\n"[..],
            b"not a pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog",
        ] {
            assert!(matches!(parse_pdf(bad), Err(PluginError::InvalidInput(_))));
        }
    }
}
