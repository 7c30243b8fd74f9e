//! Media-type sniffing from the bytes. The client's `Content-Type` is recorded
//! but never trusted.

/// The media type of `bytes`, judged from their content alone.
pub fn media_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    // HL7 v2 is often ISO 8859-1 rather than UTF-8; the parser decides.
    let lead = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    if bytes[lead..].starts_with(b"MSH|") {
        return "application/x-hl7-v2+er7";
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return "application/octet-stream";
    };
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
        if serde_json::from_str::<serde_json::Value>(head).is_ok() {
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
}
