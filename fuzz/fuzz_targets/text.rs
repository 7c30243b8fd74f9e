//! The `text` parser on arbitrary bytes: no panic, spans inside the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmemory_plugin_text::TextParser;

fuzz_target!(|data: &[u8]| {
    medmemory_fuzz::parse::<TextParser>("text/plain", data);
});
