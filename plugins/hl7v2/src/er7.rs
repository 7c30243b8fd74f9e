//! The ER7 encoding (pipe and hat): delimiters from MSH-1/MSH-2, segments with
//! their byte spans, escape sequences, repetitions, components and coded
//! elements.

use medmemory_plugin_sdk::parser::{Coding, PluginError, Span};
use medmemory_plugin_sdk::systems;

/// The delimiters of a message, from MSH-1 and MSH-2.
#[derive(Clone, Copy)]
pub(crate) struct Delimiters {
    pub(crate) field: char,
    pub(crate) component: char,
    pub(crate) repetition: char,
    pub(crate) escape: char,
    pub(crate) subcomponent: char,
}

/// One segment: its fields (raw, still escaped) and its byte span.
pub(crate) struct Segment<'a> {
    pub(crate) id: &'a str,
    pub(crate) fields: Vec<&'a str>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

pub(crate) fn delimiters(text: &str) -> Result<Delimiters, PluginError> {
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

/// Bytes that frame messages rather than belong to them: a UTF-8 byte-order
/// mark, and MLLP's start-of-block (VT) and end-of-block (FS) characters.
pub(crate) const FRAMING: [char; 3] = ['\u{feff}', '\x0b', '\x1c'];

/// The segments of `text`, each with its byte span; framing characters at the
/// start of a line are not part of its segment.
pub(crate) fn split_segments(text: &str, field: char) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive(['\r', '\n']) {
        let body = raw.trim_end_matches(['\r', '\n']);
        let line = body.trim_start_matches(FRAMING);
        let start = offset + (body.len() - line.len());
        offset += raw.len();
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
pub(crate) fn unescape(s: &str, d: Delimiters) -> String {
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
pub(crate) fn repetitions(field: &str, d: Delimiters) -> Vec<String> {
    field
        .split(d.repetition)
        .map(|r| unescape(r, d))
        .filter(|r| !r.is_empty())
        .collect()
}

/// The components of the first repetition of a field, unescaped (subcomponents
/// joined by spaces).
pub(crate) fn components(field: &str, d: Delimiters) -> Vec<String> {
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
pub(crate) fn coded(field: &str, d: Delimiters) -> Option<(Vec<Coding>, String)> {
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
pub(crate) fn system_uri(name: &str) -> String {
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

impl Segment<'_> {
    /// Field `n` as numbered by the standard (MSH counts its separator as MSH-1).
    pub(crate) fn field(&self, n: usize) -> &str {
        let index = if self.id == "MSH" { n - 1 } else { n };
        self.fields.get(index).copied().unwrap_or("")
    }

    pub(crate) fn span(&self) -> Span {
        Span::bytes(self.start, self.end)
    }
}
