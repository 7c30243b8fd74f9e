//! Reading FHIR JSON: paths, CodeableConcepts, value[x], ranges, times and
//! base64 attachments, each forgiving of what real servers omit.

use medmemory_plugin_sdk::parser::{
    ClinicalRecord, Coding, Quantity, RecordKind, ReferenceRange, Span,
};
use serde_json::Value;

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(*key),
        })
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

pub(crate) fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

/// The codings of a CodeableConcept and its best label.
pub(crate) fn concept(v: &Value) -> (Vec<Coding>, Option<String>) {
    let codes: Vec<Coding> = v
        .get("coding")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let code = str_at(c, &["code"])?;
            Some(Coding::new(
                str_at(c, &["system"]).unwrap_or(""),
                code,
                str_at(c, &["display"]),
            ))
        })
        .collect();
    let label = str_at(v, &["text"])
        .map(str::to_owned)
        .or_else(|| codes.iter().find_map(|c| c.display.clone()))
        .or_else(|| codes.first().map(|c| c.code.clone()));
    (codes, label)
}

/// The first coding's code of a CodeableConcept at `key`, e.g. a status.
pub(crate) fn concept_code(v: &Value, key: &str) -> Option<String> {
    owned(str_at(v, &[key, "coding", "0", "code"]))
}

pub(crate) fn base(
    kind: RecordKind,
    v: &Value,
    codes: Vec<Coding>,
    label: String,
    span: Span,
) -> ClinicalRecord {
    let mut record = ClinicalRecord::new(kind, label).source(span);
    record.codes = codes;
    record.source_id = owned(str_at(v, &["id"]));
    record
}

/// The value[x] of an Observation or component.
pub(crate) fn value(v: &Value) -> Option<Quantity> {
    if let Some(q) = v.get("valueQuantity") {
        let unit = str_at(q, &["unit"]).or_else(|| str_at(q, &["code"]));
        return q.get("value").and_then(Value::as_f64).map(|n| Quantity {
            value: Some(n),
            text: q.get("value").map(|n| n.to_string()),
            unit: owned(unit),
        });
    }
    if let Some(s) = str_at(v, &["valueString"]) {
        return Some(Quantity::parse(s, None));
    }
    if let Some(c) = v.get("valueCodeableConcept") {
        return concept(c).1.map(|label| Quantity::parse(&label, None));
    }
    if let Some(n) = v.get("valueInteger").and_then(Value::as_i64) {
        return Some(Quantity::number(n as f64, None));
    }
    if let Some(b) = v.get("valueBoolean").and_then(Value::as_bool) {
        return Some(Quantity::parse(if b { "true" } else { "false" }, None));
    }
    None
}

pub(crate) fn reference_range(v: &Value) -> Option<ReferenceRange> {
    let range = v.get("referenceRange")?.get(0)?;
    let low = range
        .get("low")
        .and_then(|q| q.get("value"))
        .and_then(Value::as_f64);
    let high = range
        .get("high")
        .and_then(|q| q.get("value"))
        .and_then(Value::as_f64);
    let text = owned(str_at(range, &["text"])).or_else(|| match (low, high) {
        (Some(l), Some(h)) => Some(format!("{l}-{h}")),
        (None, Some(h)) => Some(format!("<={h}")),
        (Some(l), None) => Some(format!(">={l}")),
        (None, None) => None,
    });
    Some(ReferenceRange { low, high, text })
}

/// effective[x] / onset[x] style times: a dateTime, an instant or a Period.
pub(crate) fn when(v: &Value, prefix: &str) -> (Option<String>, Option<String>) {
    for suffix in ["DateTime", "Instant", "Date"] {
        if let Some(t) = str_at(v, &[&format!("{prefix}{suffix}")]) {
            return (Some(t.to_owned()), None);
        }
    }
    let period = format!("{prefix}Period");
    (
        owned(str_at(v, &[&period, "start"])),
        owned(str_at(v, &[&period, "end"])),
    )
}

/// Standard base64 (RFC 4648, padding optional, whitespace ignored).
pub(crate) fn base64(data: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in data.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
