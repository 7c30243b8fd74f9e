//! The `ccda` parser: C-CDA R2.1 XML documents in, records and sections out.
//!
//! Reads the sections a continuity-of-care document is made of, recognised by
//! their LOINC code or template id: problems (11450-4), medications (10160-0),
//! allergies (48765-2), results (30954-2) and vital signs (8716-3). Their coded
//! entries become records; every section's human-readable narrative (including
//! sections it does not map, such as the plan of care) becomes a text section.
//! Spans point at the XML elements the data came from. DTDs are refused, so
//! entity expansion attacks cannot run.

mod entries;
mod xml;

use entries::{allergy, medication, problem, results};
use medmemory_plugin_sdk::parser::{Document, Guest, Parsed, PluginError, PluginInfo, TextSection};
use medmemory_plugin_sdk::text::squash_whitespace;
use roxmltree::{Node, ParsingOptions};
use xml::{child, children, is, narrative_text, span, text_of};

/// The largest document this plugin accepts; the host may set a lower cap.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// The HL7 v3 namespace every CDA element lives in.
pub(crate) const V3: &str = "urn:hl7-org:v3";
/// The XML Schema instance namespace (`xsi:type`).
pub(crate) const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The parser; public so that native fuzz targets call it as the host does.
pub struct CcdaParser;

impl Guest for CcdaParser {
    fn describe() -> PluginInfo {
        PluginInfo::parser(
            "ccda",
            env!("CARGO_PKG_VERSION"),
            "C-CDA XML: problems, medications, allergies, results and vital signs, plus every section's narrative.",
            &["application/cda+xml"],
        )
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        doc.at_most(MAX_BYTES)?;
        parse_xml(doc.utf8()?)
    }
}

// Exported from the component only: a native build (fuzz targets, tests)
// links no component export names.
#[cfg(target_arch = "wasm32")]
medmemory_plugin_sdk::parser::export!(CcdaParser);

/// Which kind of section this is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SectionKind {
    Problems,
    Medications,
    Allergies,
    Results,
    VitalSigns,
    Other,
}

fn section_kind(section: Node<'_, '_>) -> SectionKind {
    let code = child(section, "code").and_then(|c| c.attribute("code"));
    let templates: Vec<&str> = children(section, "templateId")
        .filter_map(|t| t.attribute("root"))
        .collect();
    let has = |root: &str| {
        templates
            .iter()
            .any(|t| *t == root || t.starts_with(&format!("{root}.")))
    };
    match code {
        Some("11450-4") => SectionKind::Problems,
        Some("10160-0") => SectionKind::Medications,
        Some("48765-2") => SectionKind::Allergies,
        Some("30954-2") => SectionKind::Results,
        Some("8716-3") => SectionKind::VitalSigns,
        _ if has("2.16.840.1.113883.10.20.22.2.5") => SectionKind::Problems,
        _ if has("2.16.840.1.113883.10.20.22.2.1") => SectionKind::Medications,
        _ if has("2.16.840.1.113883.10.20.22.2.6") => SectionKind::Allergies,
        _ if has("2.16.840.1.113883.10.20.22.2.3") => SectionKind::Results,
        _ if has("2.16.840.1.113883.10.20.22.2.4") => SectionKind::VitalSigns,
        _ => SectionKind::Other,
    }
}

/// Parses a C-CDA document.
pub fn parse_xml(xml: &str) -> Result<Parsed, PluginError> {
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: 4_000_000,
        ..ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|e| PluginError::invalid(format!("not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "ClinicalDocument" || root.tag_name().namespace() != Some(V3) {
        return Err(PluginError::invalid(
            "not a CDA document: the root is not urn:hl7-org:v3 ClinicalDocument",
        ));
    }
    let mut out = Parsed {
        records: Vec::new(),
        sections: Vec::new(),
        warnings: Vec::new(),
    };
    for section in root.descendants().filter(|n| is(*n, "section")) {
        let kind = section_kind(section);
        let title = child(section, "title").map(|t| squash_whitespace(&text_of(t)));
        if let Some(narrative) = child(section, "text") {
            let text = narrative_text(narrative);
            if !text.is_empty() {
                out.sections.push(TextSection {
                    title: title.clone().filter(|t| !t.is_empty()),
                    text,
                    source: span(narrative),
                });
            }
        }
        for entry in children(section, "entry") {
            let record = match kind {
                SectionKind::Problems => problem(entry),
                SectionKind::Medications => medication(entry),
                SectionKind::Allergies => allergy(entry),
                SectionKind::Results | SectionKind::VitalSigns => {
                    out.records.extend(results(entry, kind));
                    continue;
                }
                SectionKind::Other => None,
            };
            out.records.extend(record);
        }
    }
    if out.sections.is_empty() && out.records.is_empty() {
        out.warnings
            .push("the document has no sections with text or entries".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_and_foreign_xml_is_invalid_input() {
        let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
        for bad in [
            "<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><component>",
            "<html/>",
            "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><ClinicalDocument xmlns=\"urn:hl7-org:v3\">&a;</ClinicalDocument>",
            &deep,
        ] {
            assert!(
                matches!(parse_xml(bad), Err(PluginError::InvalidInput(_))),
                "{bad:.60}"
            );
        }
    }
}
