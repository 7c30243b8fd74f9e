//! A parser built against `medmemory:plugin@0.2.9`.

wit_bindgen::generate!({
    path: "wit",
    world: "parser",
});

/// The contract version this crate's `wit/` declares.
const CONTRACT: &str = "0.2.9";

include!("../../contract.rs");
