//! Media-type sniffing from the bytes. The client's `Content-Type` is recorded
//! but never trusted.

/// How much of an upload the sniffer looks at beyond the UTF-8 check: a
/// judgement never costs more than this, whatever the upload's size.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// Bytes that frame content rather than belong to it: a UTF-8 byte-order mark
/// and MLLP's start-of-block and end-of-block characters.
const FRAMING: [char; 3] = ['\u{feff}', '\x0b', '\x1c'];

/// The media type of `bytes`, judged from their content alone, looking at
/// most at the first [`SNIFF_BYTES`] (plus a UTF-8 validity check, which
/// allocates nothing): nothing is parsed into a tree.
pub fn media_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    let head_bytes = &bytes[..bytes.len().min(SNIFF_BYTES)];
    // HL7 v2 is often ISO 8859-1 rather than UTF-8; the parser decides. A
    // batch file opens with FHS or BHS; MLLP frames start with VT.
    let hl7_head = String::from_utf8_lossy(&head_bytes[..head_bytes.len().min(64)]);
    let hl7_head =
        hl7_head.trim_start_matches(|c: char| c.is_ascii_whitespace() || FRAMING.contains(&c));
    if ["MSH|", "FHS|", "BHS|"]
        .iter()
        .any(|h| hl7_head.starts_with(h))
    {
        return "application/x-hl7-v2+er7";
    }
    if std::str::from_utf8(bytes).is_err() {
        return "application/octet-stream";
    }
    // `bytes` is UTF-8, so cutting at the last character boundary of the head
    // gives valid text.
    let mut cut = head_bytes.len();
    while std::str::from_utf8(&head_bytes[..cut]).is_err() {
        cut -= 1;
    }
    let truncated = cut < bytes.len();
    let text = std::str::from_utf8(&head_bytes[..cut]).unwrap_or_default();
    let text = text.trim_start_matches('\u{feff}');
    if !is_text(text) {
        return "application/octet-stream";
    }
    let head = text.trim_start();
    if head.starts_with('{') || head.starts_with('[') {
        // FHIR even when truncated: the FHIR parser then says what is wrong.
        if head.contains("\"resourceType\"") {
            return "application/fhir+json";
        }
        if looks_like_json(head, truncated) {
            return "application/json";
        }
    }
    if head.starts_with("<?xml") || head.starts_with('<') {
        return if head.contains("urn:hl7-org:v3") {
            "application/cda+xml"
        } else {
            "application/xml"
        };
    }
    "text/plain"
}

/// Whether `head` is JSON, or the start of JSON when `truncated`: checked with
/// a deserializer that keeps nothing (depth is bounded by serde_json).
fn looks_like_json(head: &str, truncated: bool) -> bool {
    match serde_json::from_str::<serde::de::IgnoredAny>(head) {
        Ok(_) => true,
        Err(e) => truncated && e.is_eof(),
    }
}

/// Text has no NULs and almost no control characters other than whitespace.
fn is_text(text: &str) -> bool {
    let mut control = 0usize;
    let mut total = 0usize;
    for c in text.chars() {
        total += 1;
        if c == '\0' {
            return false;
        }
        if c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}') {
            control += 1;
        }
    }
    total > 0 && control * 100 <= total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content_not_by_claim() {
        assert_eq!(media_type(b"Patient reports chest pain.\n"), "text/plain");
        assert_eq!(media_type(b"%PDF-1.7\n..."), "application/pdf");
        assert_eq!(media_type(b"MSH|^~\\&|LAB|"), "application/x-hl7-v2+er7");
        assert_eq!(
            media_type(br#"{"resourceType":"Bundle"}"#),
            "application/fhir+json"
        );
        assert_eq!(
            media_type(br#"{"resourceType":"Bundle","entry":["#),
            "application/fhir+json"
        );
        assert_eq!(
            media_type(b"MSH|^~\\&|LAB|||\rNTE|1||caf\xe9\r"),
            "application/x-hl7-v2+er7"
        );
        assert_eq!(
            media_type(b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\">"),
            "application/cda+xml"
        );
        assert_eq!(
            media_type(&[0xff, 0xd8, 0xff, 0xe0, 0, 1, 2]),
            "application/octet-stream"
        );
        assert_eq!(media_type(b"text\0with nul"), "application/octet-stream");
        assert_eq!(
            media_type(&[1, 2, 3, 4, 5, 6, 7, 8]),
            "application/octet-stream"
        );
    }

    #[test]
    fn hl7_behind_a_byte_order_mark_framing_or_a_batch_header() {
        for head in [
            &b"\xef\xbb\xbfMSH|^~\\&|LAB|"[..],
            b"\x0bMSH|^~\\&|LAB|",
            b"FHS|^~\\&|LAB\rBHS|^~\\&|LAB\rMSH|^~\\&|",
            b"BHS|^~\\&|LAB\rMSH|^~\\&|",
        ] {
            assert_eq!(media_type(head), "application/x-hl7-v2+er7", "{head:?}");
        }
    }

    #[test]
    fn large_json_is_judged_from_its_head() {
        let zeros = format!("[{}0]", "0,".repeat(3_000_000));
        assert_eq!(media_type(zeros.as_bytes()), "application/json");
        let broken = format!("[{}0,}}", "0,".repeat(10));
        assert_eq!(media_type(broken.as_bytes()), "text/plain");
        let mut fhir = String::from("{\"resourceType\":\"Bundle\",\"entry\":[");
        fhir.push_str(&"{\"fullUrl\":\"x\"},".repeat(100_000));
        assert_eq!(media_type(fhir.as_bytes()), "application/fhir+json");
    }
}
