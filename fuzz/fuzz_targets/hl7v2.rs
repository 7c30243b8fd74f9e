//! The `hl7v2` parser on arbitrary bytes: no panic, spans inside the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmemory_plugin_hl7v2::Hl7Parser;

fuzz_target!(|data: &[u8]| {
    medmemory_fuzz::parse::<Hl7Parser>("application/x-hl7-v2+er7", data);
});
