//! The `hl7v2` parser: HL7 v2.x messages (ER7 pipe-and-hat) in, records out.
//!
//! - `ORU^R01` results: each `OBX` becomes an observation with its code (OBX-3),
//!   value (OBX-5, all repetitions), units (OBX-6), reference range (OBX-7),
//!   abnormal flag (OBX-8), status (OBX-11) and time (OBX-14, else OBR-7); `NTE`
//!   comments become text sections under their order's title (OBR-4).
//! - `ADT^A01` (admit) and `ADT^A03` (discharge): the `PV1` visit becomes an
//!   encounter; `DG1` diagnoses become conditions and `AL1` allergies allergies.
//!
//! The delimiters are read from MSH-1/MSH-2; escape sequences (`\F\ \S\ \T\ \R\
//! \E\ \Xhh\ \.br\`) are decoded. Segments may end in CR, LF or CRLF; several
//! messages in one upload (batch) are fine. Every record keeps the byte span of
//! its segment. Text must be UTF-8 unless MSH-18 names ISO 8859-1.

use medmemory_plugin_sdk::parser::{
    ClinicalRecord, Coding, Document, Guest, Parsed, PluginError, PluginInfo, Quantity, RecordKind,
    ReferenceRange, Span, TextSection,
};
use medmemory_plugin_sdk::{systems, values};

/// The largest document this plugin accepts; the host may set a lower cap.
const MAX_BYTES: usize = 16 * 1024 * 1024;

struct Hl7Parser;

impl Guest for Hl7Parser {
    fn describe() -> PluginInfo {
        PluginInfo::parser(
            "hl7v2",
            env!("CARGO_PKG_VERSION"),
            "HL7 v2 messages: ORU^R01 results, ADT^A01/A03 admissions and discharges.",
            &["application/x-hl7-v2+er7"],
        )
    }

    fn parse(doc: Document) -> Result<Parsed, PluginError> {
        doc.at_most(MAX_BYTES)?;
        let (text, latin1) = decode(&doc.content)?;
        let mut parsed = parse_message(&text)?;
        if latin1 {
            to_source_offsets(&text, &mut parsed);
        }
        Ok(parsed)
    }
}

medmemory_plugin_sdk::parser::export!(Hl7Parser);

/// UTF-8, or ISO 8859-1 when MSH-18 says so; the flag tells which.
fn decode(bytes: &[u8]) -> Result<(String, bool), PluginError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok((text.to_owned(), false)),
        Err(e) => {
            let head: String = bytes.iter().take(512).map(|&b| b as char).collect();
            let msh = head.lines().next().unwrap_or("");
            if msh.contains("8859/1") || msh.contains("ISO-8859-1") {
                Ok((bytes.iter().map(|&b| b as char).collect(), true))
            } else {
                Err(PluginError::invalid(format!(
                    "not UTF-8 and MSH-18 names no other character set: {e}"
                )))
            }
        }
    }
}

/// Maps spans over the decoded UTF-8 text back onto the Latin-1 source, where
/// every character is one byte: subtract one per non-ASCII character before.
fn to_source_offsets(text: &str, parsed: &mut Parsed) {
    let wide: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| !c.is_ascii())
        .map(|(i, _)| i)
        .collect();
    let map = |offset: u32| offset - wide.partition_point(|&w| w < offset as usize) as u32;
    let fix = |span: &mut Span| {
        span.start = map(span.start);
        span.end = map(span.end);
    };
    parsed
        .records
        .iter_mut()
        .filter_map(|r| r.source.as_mut())
        .for_each(fix);
    parsed
        .sections
        .iter_mut()
        .map(|s| &mut s.source)
        .for_each(fix);
}

/// The delimiters of a message, from MSH-1 and MSH-2.
#[derive(Clone, Copy)]
struct Delimiters {
    field: char,
    component: char,
    repetition: char,
    escape: char,
    subcomponent: char,
}

/// One segment: its fields (raw, still escaped) and its byte span.
struct Segment<'a> {
    id: &'a str,
    fields: Vec<&'a str>,
    start: usize,
    end: usize,
}

impl Segment<'_> {
    /// Field `n` as numbered by the standard (MSH counts its separator as MSH-1).
    fn field(&self, n: usize) -> &str {
        let index = if self.id == "MSH" { n - 1 } else { n };
        self.fields.get(index).copied().unwrap_or("")
    }

    fn span(&self) -> Span {
        Span::bytes(self.start, self.end)
    }
}

/// Parses one or more messages.
pub fn parse_message(text: &str) -> Result<Parsed, PluginError> {
    let text_start = text.len() - text.trim_start().len();
    if !text[text_start..].starts_with("MSH") {
        return Err(PluginError::invalid(
            "an HL7 v2 message starts with an MSH segment",
        ));
    }
    let delims = delimiters(&text[text_start..])?;
    let segments = split_segments(text, delims.field);
    let mut out = Parsed {
        records: Vec::new(),
        sections: Vec::new(),
        warnings: Vec::new(),
    };
    let mut message_type = String::new();
    let mut order: Option<(String, Option<String>)> = None;
    let mut handled = 0usize;
    for seg in &segments {
        match seg.id {
            "MSH" => {
                message_type = components(seg.field(9), delims)
                    .into_iter()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join("^");
                order = None;
            }
            "OBR" => {
                let title = coded(seg.field(4), delims).map(|(_, label)| label);
                order = Some((
                    title.unwrap_or_else(|| "Results".into()),
                    values::hl7_timestamp(seg.field(7)),
                ));
            }
            "OBX" => {
                out.records.push(observation(
                    seg,
                    delims,
                    order.as_ref().and_then(|o| o.1.clone()),
                ));
                handled += 1;
            }
            "NTE" => {
                let comment = repetitions(seg.field(3), delims).join(" ");
                if !comment.trim().is_empty() {
                    out.sections.push(TextSection {
                        title: Some(order.as_ref().map_or("Comment".into(), |o| o.0.clone())),
                        text: comment.trim().to_owned(),
                        source: seg.span(),
                    });
                }
            }
            "PV1" if message_type.starts_with("ADT") => {
                out.records.push(encounter(seg, delims, &message_type));
                handled += 1;
            }
            "DG1" => {
                out.records.push(diagnosis(seg, delims));
                handled += 1;
            }
            "AL1" => {
                out.records.push(allergy(seg, delims));
                handled += 1;
            }
            _ => {}
        }
    }
    if !matches!(message_type.as_str(), "ORU^R01" | "ADT^A01" | "ADT^A03") {
        out.warnings.push(format!(
            "message type {message_type} is not one this parser maps; {handled} segment(s) read"
        ));
    }
    Ok(out)
}

fn delimiters(text: &str) -> Result<Delimiters, PluginError> {
    let mut chars = text.chars().skip(3);
    let field = chars
        .next()
        .ok_or_else(|| PluginError::invalid("MSH is truncated"))?;
    let enc: Vec<char> = chars.take_while(|c| *c != field).collect();
    if enc.len() < 4 || field.is_alphanumeric() {
        return Err(PluginError::invalid(
            "MSH-2 (encoding characters) is incomplete",
        ));
    }
    Ok(Delimiters {
        field,
        component: enc[0],
        repetition: enc[1],
        escape: enc[2],
        subcomponent: enc[3],
    })
}

fn split_segments(text: &str, field: char) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive(['\r', '\n']) {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(field).collect();
        let id = fields[0].trim();
        if id.len() != 3 {
            continue;
        }
        out.push(Segment {
            id,
            fields,
            start,
            end: start + line.len(),
        });
    }
    out
}

/// Decodes HL7 escape sequences.
fn unescape(s: &str, d: Delimiters) -> String {
    if !s.contains(d.escape) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(d.escape) {
        out.push_str(&rest[..i]);
        let after = &rest[i + d.escape.len_utf8()..];
        let Some(j) = after.find(d.escape) else {
            out.push_str(&rest[i..]);
            return out;
        };
        let seq = &after[..j];
        match seq {
            "F" => out.push(d.field),
            "S" => out.push(d.component),
            "T" => out.push(d.subcomponent),
            "R" => out.push(d.repetition),
            "E" => out.push(d.escape),
            ".br" => out.push('\n'),
            _ if seq.starts_with('X') && seq.len() > 1 => {
                let hex = &seq[1..];
                let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
                    .map(|k| u8::from_str_radix(hex.get(2 * k..2 * k + 2)?, 16).ok())
                    .collect();
                match bytes.and_then(|b| String::from_utf8(b).ok()) {
                    Some(decoded) => out.push_str(&decoded),
                    None => out.push_str(&rest[i..i + 2 * d.escape.len_utf8() + seq.len()]),
                }
            }
            // Formatting commands (\H\, \N\, \.sp\, ...) carry no text.
            _ => {}
        }
        rest = &after[j + d.escape.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// The repetitions of a field, unescaped.
fn repetitions(field: &str, d: Delimiters) -> Vec<String> {
    field
        .split(d.repetition)
        .map(|r| unescape(r, d))
        .filter(|r| !r.is_empty())
        .collect()
}

/// The components of the first repetition of a field, unescaped (subcomponents
/// joined by spaces).
fn components(field: &str, d: Delimiters) -> Vec<String> {
    let first = field.split(d.repetition).next().unwrap_or("");
    first
        .split(d.component)
        .map(|c| {
            c.split(d.subcomponent)
                .map(|s| unescape(s, d))
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_owned()
        })
        .collect()
}

/// A coded element (CE/CWE: `code^text^system^altcode^alttext^altsystem`) as
/// codings plus its best label.
fn coded(field: &str, d: Delimiters) -> Option<(Vec<Coding>, String)> {
    let parts = components(field, d);
    let get = |i: usize| parts.get(i).map(String::as_str).unwrap_or("");
    let mut codes = Vec::new();
    for (code, text, system) in [(get(0), get(1), get(2)), (get(3), get(4), get(5))] {
        if !code.is_empty() {
            codes.push(Coding::new(&system_uri(system), code, Some(text)));
        }
    }
    let label = [get(1), get(4), get(0)]
        .into_iter()
        .find(|s| !s.is_empty())?
        .to_owned();
    Some((codes, label))
}

/// HL7 table 0396 coding-system names as URIs.
fn system_uri(name: &str) -> String {
    match name {
        "LN" => systems::LOINC.into(),
        "SCT" | "SNM" | "SNOMEDCT" => systems::SNOMED.into(),
        "RXNORM" | "RXN" => systems::RXNORM.into(),
        "I10" | "I10C" | "ICD10CM" => systems::ICD10.into(),
        "I9" | "I9C" => "http://hl7.org/fhir/sid/icd-9-cm".into(),
        "UCUM" => systems::UCUM.into(),
        "CVX" => systems::CVX.into(),
        "" => String::new(),
        other => format!("urn:hl7-v2:coding-system:{other}"),
    }
}

fn observation(seg: &Segment<'_>, d: Delimiters, order_time: Option<String>) -> ClinicalRecord {
    let (codes, label) =
        coded(seg.field(3), d).unwrap_or_else(|| (Vec::new(), "Observation".into()));
    let value_type = seg.field(2);
    let values = repetitions(seg.field(5), d);
    let unit = components(seg.field(6), d)
        .into_iter()
        .find(|u| !u.is_empty());
    let value = match value_type {
        // Coded values: their text, not the code.
        "CE" | "CWE" | "CNE" => {
            coded(seg.field(5), d).map(|(_, label)| Quantity::parse(&label, None))
        }
        // Structured numeric: `<^0.5` or `>^200`.
        "SN" => {
            let joined = components(seg.field(5), d).concat();
            Some(Quantity::parse(&joined, unit.as_deref()))
        }
        _ if values.is_empty() => None,
        _ => Some(Quantity::parse(&values.join(" "), unit.as_deref())),
    };
    let range = unescape(seg.field(7), d);
    let mut record = ClinicalRecord::new(RecordKind::Observation, label)
        .status(Some(result_status(seg.field(11))).filter(|s| !s.is_empty()))
        .effective(values::hl7_timestamp(seg.field(14)).or(order_time), None)
        .detail("value-type", Some(value_type))
        .source(seg.span());
    record.codes = codes;
    record.value = value;
    record.reference_range = (!range.trim().is_empty()).then(|| ReferenceRange::parse(&range));
    record.interpretation = repetitions(seg.field(8), d).into_iter().next();
    record
}

/// OBX-11 codes (HL7 table 0085) as FHIR observation statuses.
fn result_status(code: &str) -> String {
    match code {
        "F" => "final",
        "P" => "preliminary",
        "C" => "corrected",
        "X" => "cancelled",
        "R" | "I" | "S" => "registered",
        "" => "",
        other => other,
    }
    .to_owned()
}

fn encounter(seg: &Segment<'_>, d: Delimiters, message_type: &str) -> ClinicalRecord {
    let class = seg.field(2);
    let class_name = match class {
        "I" => "Inpatient",
        "O" => "Outpatient",
        "E" => "Emergency",
        "P" => "Preadmit",
        "R" => "Recurring patient",
        "B" => "Obstetrics",
        _ => "Visit",
    };
    let discharged = message_type == "ADT^A03";
    let label = format!(
        "{class_name} {}",
        if discharged { "discharge" } else { "admission" }
    );
    let location: Vec<String> = components(seg.field(3), d)
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    let mut record = ClinicalRecord::new(RecordKind::Encounter, label)
        .status(Some(if discharged {
            "finished"
        } else {
            "in-progress"
        }))
        .effective(
            values::hl7_timestamp(seg.field(44)),
            values::hl7_timestamp(seg.field(45)),
        )
        .detail("class", Some(class))
        .detail("location", Some(location.join(" ")))
        .detail(
            "attending",
            components(seg.field(7), d).get(1..3).map(|name| {
                name.iter()
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim()
                    .to_owned()
            }),
        )
        .source(seg.span());
    record.source_id = components(seg.field(19), d)
        .into_iter()
        .next()
        .filter(|v| !v.is_empty());
    record.codes.push(Coding::new(
        "http://terminology.hl7.org/CodeSystem/v2-0004",
        class,
        Some(class_name),
    ));
    record
}

fn diagnosis(seg: &Segment<'_>, d: Delimiters) -> ClinicalRecord {
    let (codes, label) = coded(seg.field(3), d)
        .or_else(|| Some((Vec::new(), unescape(seg.field(4), d))).filter(|(_, l)| !l.is_empty()))
        .unwrap_or_else(|| (Vec::new(), "Diagnosis".into()));
    let mut record = ClinicalRecord::new(RecordKind::Condition, label)
        .effective(values::hl7_timestamp(seg.field(5)), None)
        .detail("diagnosis-type", Some(seg.field(6)))
        .source(seg.span());
    record.codes = codes;
    record
}

fn allergy(seg: &Segment<'_>, d: Delimiters) -> ClinicalRecord {
    let (codes, label) = coded(seg.field(3), d).unwrap_or_else(|| (Vec::new(), "Allergy".into()));
    let severity = match seg.field(4) {
        "SV" => Some("severe"),
        "MO" => Some("moderate"),
        "MI" => Some("mild"),
        _ => None,
    };
    let mut record = ClinicalRecord::new(RecordKind::Allergy, label)
        .detail("category", coded(seg.field(2), d).map(|(_, l)| l))
        .detail("severity", severity)
        .detail("reaction", Some(repetitions(seg.field(5), d).join(", ")))
        .effective(values::hl7_timestamp(seg.field(6)), None)
        .source(seg.span());
    record.codes = codes;
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decoded() {
        let d = Delimiters {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
        };
        assert_eq!(unescape(r"a\F\b\S\c\T\d\R\e\E\f", d), r"a|b^c&d~e\f");
        assert_eq!(unescape(r"line\.br\next", d), "line\nnext");
        assert_eq!(unescape(r"\X4869\ there", d), "Hi there");
        assert_eq!(unescape(r"\H\bold\N\", d), "bold");
        assert_eq!(unescape(r"dangling\F", d), r"dangling\F");
    }

    #[test]
    fn not_hl7_is_invalid_input() {
        for bad in ["PID|1", "MSH", "MSH|^~", ""] {
            assert!(
                matches!(parse_message(bad), Err(PluginError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn latin1_only_when_declared() {
        let mut msg =
            b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5|||||||8859/1\rNTE|1||caf\xe9\r".to_vec();
        let (text, latin1) = decode(&msg).unwrap();
        assert!(latin1 && text.contains("café"));
        let mut parsed = parse_message(&text).unwrap();
        to_source_offsets(&text, &mut parsed);
        let span = parsed.sections[0].source;
        assert_eq!(
            &msg[span.start as usize..span.end as usize],
            b"NTE|1||caf\xe9"
        );
        msg = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\rNTE|1||caf\xe9\r".to_vec();
        assert!(matches!(decode(&msg), Err(PluginError::InvalidInput(_))));
    }
}
