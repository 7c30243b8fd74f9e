//! A parser built against `medmemory:plugin@0.3.0`.

wit_bindgen::generate!({
    path: "wit",
    world: "parser",
});

/// The contract version this crate's `wit/` declares.
const CONTRACT: &str = "0.3.0";

include!("../../contract.rs");
