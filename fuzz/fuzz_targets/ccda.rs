//! The `ccda` parser on arbitrary bytes: no panic, spans inside the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmemory_plugin_ccda::CcdaParser;

fuzz_target!(|data: &[u8]| {
    medmemory_fuzz::parse::<CcdaParser>("application/cda+xml", data);
});
