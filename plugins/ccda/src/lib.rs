//! The `ccda` parser: C-CDA R2.1 XML documents in, records and sections out.
//!
//! Reads the sections a continuity-of-care document is made of, recognised by
//! their LOINC code or template id: problems (11450-4), medications (10160-0),
//! allergies (48765-2), results (30954-2) and vital signs (8716-3). Their coded
//! entries become records; every section's human-readable narrative (including
//! sections it does not map, such as the plan of care) becomes a text section.
//! Spans point at the XML elements the data came from. DTDs are refused, so
//! entity expansion attacks cannot run.

use medmemory_plugin_sdk::parser::{
    ClinicalRecord, Coding, Document, Guest, Parsed, PluginError, PluginInfo, Quantity, RecordKind,
    ReferenceRange, Span, TextSection,
};
use medmemory_plugin_sdk::{systems, text::squash_whitespace, values};
use roxmltree::{Node, ParsingOptions};

/// The largest document this plugin accepts; the host may set a lower cap.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// The HL7 v3 namespace every CDA element lives in.
const V3: &str = "urn:hl7-org:v3";
/// The XML Schema instance namespace (`xsi:type`).
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

struct CcdaParser;

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

medmemory_plugin_sdk::parser::export!(CcdaParser);

/// Which kind of section this is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SectionKind {
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

fn is(node: Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(V3)
}

fn children<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |n| is(*n, name))
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    children(node, name).next()
}

/// The first descendant element called `name` (the node itself excluded).
fn find<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    node.descendants().skip(1).find(|n| is(*n, name))
}

/// The first descendant element carrying template `root`.
fn with_template<'a, 'i>(node: Node<'a, 'i>, root: &str) -> Option<Node<'a, 'i>> {
    node.descendants().find(|n| {
        n.is_element() && children(*n, "templateId").any(|t| t.attribute("root") == Some(root))
    })
}

fn span(node: Node<'_, '_>) -> Span {
    let range = node.range();
    Span::bytes(range.start, range.end)
}

fn text_of(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A section's narrative as plain text: table rows and list items on lines of
/// their own, cells separated by `; `.
fn narrative_text(narrative: Node<'_, '_>) -> String {
    let mut lines = Vec::new();
    let mut loose = Vec::new();
    for node in narrative.children() {
        collect_lines(node, &mut lines, &mut loose, 0);
    }
    if !loose.is_empty() {
        lines.push(squash_whitespace(&loose.join(" ")));
    }
    lines.retain(|l| !l.is_empty());
    lines.join("\n")
}

/// Narrative nested deeper than this is read as flat text (no recursion).
const MAX_NARRATIVE_DEPTH: usize = 32;

fn collect_lines(
    node: Node<'_, '_>,
    lines: &mut Vec<String>,
    loose: &mut Vec<String>,
    depth: usize,
) {
    if node.is_text() {
        loose.extend(node.text().map(str::to_owned));
        return;
    }
    if depth > MAX_NARRATIVE_DEPTH {
        loose.push(text_of(node));
        return;
    }
    let name = node.tag_name().name();
    match name {
        "tr" => {
            let cells: Vec<String> = node
                .children()
                .filter(|c| matches!(c.tag_name().name(), "td" | "th"))
                .map(|c| squash_whitespace(&text_of(c)))
                .collect();
            lines.push(cells.join("; "));
        }
        "item" | "paragraph" | "caption" => {
            flush(lines, loose);
            lines.push(squash_whitespace(&text_of(node)));
        }
        _ => {
            for c in node.children() {
                collect_lines(c, lines, loose, depth + 1);
            }
        }
    }
}

fn flush(lines: &mut Vec<String>, loose: &mut Vec<String>) {
    if !loose.is_empty() {
        lines.push(squash_whitespace(&loose.join(" ")));
        loose.clear();
    }
}

/// CDA code system OIDs as FHIR URIs.
fn system_uri(oid: &str) -> String {
    match oid {
        "2.16.840.1.113883.6.1" => systems::LOINC.into(),
        "2.16.840.1.113883.6.96" => systems::SNOMED.into(),
        "2.16.840.1.113883.6.88" => systems::RXNORM.into(),
        "2.16.840.1.113883.6.90" => systems::ICD10.into(),
        "2.16.840.1.113883.6.103" => "http://hl7.org/fhir/sid/icd-9-cm".into(),
        "2.16.840.1.113883.12.292" => systems::CVX.into(),
        "2.16.840.1.113883.6.8" => systems::UCUM.into(),
        "" => String::new(),
        other => format!("urn:oid:{other}"),
    }
}

/// A CD/CE element (`code`, `value`) and its translations as codings, plus
/// the best label (displayName, else originalText, else the code).
fn coded(node: Node<'_, '_>) -> (Vec<Coding>, Option<String>) {
    let mut codes = Vec::new();
    for n in std::iter::once(node).chain(children(node, "translation")) {
        if let Some(code) = n.attribute("code") {
            codes.push(Coding::new(
                &system_uri(n.attribute("codeSystem").unwrap_or("")),
                code,
                n.attribute("displayName"),
            ));
        }
    }
    let original = child(node, "originalText")
        .map(|t| squash_whitespace(&text_of(t)))
        .filter(|t| !t.is_empty());
    let label = node
        .attribute("displayName")
        .map(str::to_owned)
        .or(original)
        .or_else(|| codes.iter().find_map(|c| c.display.clone()))
        .or_else(|| codes.first().map(|c| c.code.clone()));
    (codes, label)
}

/// effectiveTime as (start, end): `@value`, or `low`/`high`.
fn times(node: Node<'_, '_>) -> (Option<String>, Option<String>) {
    let Some(time) = child(node, "effectiveTime") else {
        return (None, None);
    };
    if let Some(v) = time.attribute("value") {
        return (values::hl7_timestamp(v), None);
    }
    let at = |name| {
        child(time, name)
            .and_then(|n| n.attribute("value"))
            .and_then(values::hl7_timestamp)
    };
    (at("low"), at("high"))
}

fn status(node: Node<'_, '_>) -> Option<String> {
    child(node, "statusCode")
        .and_then(|s| s.attribute("code"))
        .map(str::to_owned)
}

fn record(
    kind: RecordKind,
    codes: Vec<Coding>,
    label: String,
    entry: Node<'_, '_>,
) -> ClinicalRecord {
    let mut record = ClinicalRecord::new(kind, label).source(span(entry));
    record.codes = codes;
    record
}

fn problem(entry: Node<'_, '_>) -> Option<ClinicalRecord> {
    let concern = find(entry, "act");
    let observation = with_template(entry, "2.16.840.1.113883.10.20.22.4.4")
        .or_else(|| find(entry, "observation"))?;
    let (codes, label) = coded(child(observation, "value")?);
    let (start, end) = times(observation);
    Some(
        record(
            RecordKind::Condition,
            codes,
            label.unwrap_or_else(|| "Problem".into()),
            entry,
        )
        .status(concern.and_then(status).or_else(|| status(observation)))
        .effective(start, end),
    )
}

fn medication(entry: Node<'_, '_>) -> Option<ClinicalRecord> {
    let admin = find(entry, "substanceAdministration")?;
    let material = find(admin, "manufacturedMaterial")?;
    let (codes, label) = coded(child(material, "code")?);
    // The first effectiveTime is the period; a second (PIVL_TS) is the frequency.
    let (start, end) = times(admin);
    let dose = child(admin, "doseQuantity").and_then(|d| {
        let value = d.attribute("value")?;
        Some(
            format!("{value} {}", d.attribute("unit").unwrap_or(""))
                .trim()
                .to_owned(),
        )
    });
    let route = child(admin, "routeCode").and_then(|r| coded(r).1);
    Some(
        record(
            RecordKind::Medication,
            codes,
            label.unwrap_or_else(|| "Medication".into()),
            entry,
        )
        .status(status(admin))
        .effective(start, end)
        .detail("dose", dose)
        .detail("route", route),
    )
}

fn allergy(entry: Node<'_, '_>) -> Option<ClinicalRecord> {
    let concern = find(entry, "act");
    let observation = with_template(entry, "2.16.840.1.113883.10.20.22.4.7")
        .or_else(|| find(entry, "observation"))?;
    let allergen = find(observation, "playingEntity").and_then(|p| child(p, "code"));
    let (codes, label) = allergen.map(coded).unwrap_or_default();
    let reaction = with_template(observation, "2.16.840.1.113883.10.20.22.4.9")
        .and_then(|r| child(r, "value"))
        .and_then(|v| coded(v).1);
    let severity = with_template(observation, "2.16.840.1.113883.10.20.22.4.8")
        .and_then(|r| child(r, "value"))
        .and_then(|v| coded(v).1);
    let (start, _) = times(observation);
    Some(
        record(
            RecordKind::Allergy,
            codes,
            label.unwrap_or_else(|| "Allergy".into()),
            entry,
        )
        .status(concern.and_then(status))
        .effective(start, None)
        .detail("reaction", reaction)
        .detail("severity", severity),
    )
}

fn results(entry: Node<'_, '_>, kind: SectionKind) -> Vec<ClinicalRecord> {
    let panel = find(entry, "organizer")
        .and_then(|o| child(o, "code"))
        .and_then(|c| coded(c).1);
    entry
        .descendants()
        .filter(|n| is(*n, "observation"))
        .filter_map(|observation| {
            let (codes, label) = coded(child(observation, "code")?);
            let (start, end) = times(observation);
            let mut r = record(
                RecordKind::Observation,
                codes,
                label.unwrap_or_else(|| "Result".into()),
                observation,
            )
            .status(status(observation))
            .effective(start, end)
            .detail("panel", panel.clone())
            .detail(
                "category",
                Some(if kind == SectionKind::VitalSigns {
                    "vital-signs"
                } else {
                    "laboratory"
                }),
            );
            r.value = child(observation, "value").and_then(result_value);
            r.interpretation = child(observation, "interpretationCode")
                .and_then(|i| i.attribute("code"))
                .map(str::to_owned);
            r.reference_range = find(observation, "observationRange").and_then(range);
            Some(r)
        })
        .collect()
}

fn result_value(value: Node<'_, '_>) -> Option<Quantity> {
    match value.attribute((XSI, "type")).unwrap_or("") {
        "PQ" | "INT" | "REAL" => Some(Quantity::parse(
            value.attribute("value")?,
            value.attribute("unit"),
        )),
        "CD" | "CE" | "CO" => coded(value).1.map(|l| Quantity::parse(&l, None)),
        _ => {
            let text = squash_whitespace(&text_of(value));
            (!text.is_empty()).then(|| Quantity::parse(&text, None))
        }
    }
}

fn range(observation_range: Node<'_, '_>) -> Option<ReferenceRange> {
    let text = child(observation_range, "text")
        .map(|t| squash_whitespace(&text_of(t)))
        .filter(|t| !t.is_empty());
    let bound = |name| {
        child(observation_range, "value")
            .and_then(|v| child(v, name))
            .and_then(|b| b.attribute("value"))
            .and_then(values::number)
    };
    let (low, high) = (bound("low"), bound("high"));
    match (text, low, high) {
        (Some(text), None, None) => Some(ReferenceRange::parse(&text)),
        (None, None, None) => None,
        (text, low, high) => Some(ReferenceRange { low, high, text }),
    }
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
