//! The upload sniffer (the host's own file, compiled here alone): it never
//! panics, and always names one of the media types the host routes.
#![no_main]

#[path = "../../host/src/ingest/sniff.rs"]
#[allow(dead_code)]
mod sniff;

use libfuzzer_sys::fuzz_target;

const KNOWN: [&str; 8] = [
    "application/pdf",
    "application/x-hl7-v2+er7",
    "application/octet-stream",
    "application/fhir+json",
    "application/json",
    "application/cda+xml",
    "application/xml",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let media_type = sniff::media_type(data);
    assert!(KNOWN.contains(&media_type), "{media_type}");
    if data.starts_with(b"%PDF-") {
        assert_eq!(media_type, "application/pdf");
    }
});
