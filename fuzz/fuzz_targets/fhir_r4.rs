//! The `fhir_r4` parser on arbitrary bytes: no panic, spans inside the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmemory_plugin_fhir_r4::FhirParser;

fuzz_target!(|data: &[u8]| {
    medmemory_fuzz::parse::<FhirParser>("application/fhir+json", data);
});
