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
//! messages in one upload are fine, as are batch files (`FHS`/`BHS` ...
//! `BTS`/`FTS`), MLLP framing bytes and a UTF-8 byte-order mark. Every record
//! keeps the byte span of its segment. Text must be UTF-8 unless MSH-18 names
//! ISO 8859-1.

mod er7;
mod segments;

use er7::{FRAMING, coded, components, delimiters, repetitions, split_segments};
use medmemory_plugin_sdk::parser::{
    Document, Guest, Parsed, PluginError, PluginInfo, Span, TextSection,
};
use medmemory_plugin_sdk::values;
use segments::{allergy, diagnosis, encounter, observation};

/// The largest document this plugin accepts; the host may set a lower cap.
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// The parser; public so that native fuzz targets call it as the host does.
pub struct Hl7Parser;

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

// Exported from the component only: a native build (fuzz targets, tests)
// links no component export names.
#[cfg(target_arch = "wasm32")]
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

/// Parses one or more messages.
pub fn parse_message(text: &str) -> Result<Parsed, PluginError> {
    // A batch file opens with FHS or BHS, which carry the same delimiters.
    let head = text.trim_start_matches(|c: char| c.is_whitespace() || FRAMING.contains(&c));
    if !["MSH", "FHS", "BHS"].iter().any(|h| head.starts_with(h)) {
        return Err(PluginError::invalid(
            "an HL7 v2 message starts with an MSH segment (or a batch with FHS or BHS)",
        ));
    }
    let delims = delimiters(head)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::er7::{Delimiters, unescape};

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
    fn batches_framing_and_byte_order_marks_are_read() {
        let message = |id: &str, value: &str| {
            format!(
                "MSH|^~\\&|LAB|HOSP|EHR|CLINIC|20240305||ORU^R01|{id}|P|2.5\r\
                 OBR|1|||4548-4^HbA1c^LN|||20240305\r\
                 OBX|1|NM|4548-4^Hemoglobin A1c^LN||{value}|%|4.0-5.6|H|||F\r"
            )
        };
        let batch = format!(
            "\u{feff}FHS|^~\\&|LAB\rBHS|^~\\&|LAB\r{}{}BTS|2\rFTS|1\r",
            message("1", "7.2"),
            message("2", "6.8")
        );
        let mllp = format!("\x0b{}\x1c\r", message("3", "6.1"));
        for (text, values) in [(batch, vec![7.2, 6.8]), (mllp, vec![6.1])] {
            let parsed = parse_message(&text).unwrap();
            let got: Vec<f64> = parsed
                .records
                .iter()
                .filter_map(|r| r.value.as_ref().and_then(|v| v.value))
                .collect();
            assert_eq!(got, values, "{text:?}");
            for r in &parsed.records {
                let span = r.source.unwrap();
                assert!(text[span.start as usize..span.end as usize].starts_with("OBX|"));
            }
        }
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
