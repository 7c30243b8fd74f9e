//! The `pdf` parser on arbitrary bytes: no panic, spans inside the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medmemory_plugin_pdf::PdfParser;

fuzz_target!(|data: &[u8]| {
    medmemory_fuzz::parse::<PdfParser>("application/pdf", data);
});
