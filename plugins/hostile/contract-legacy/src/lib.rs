//! A parser built against `medmemory:plugin@0.1.0`, the previous contract,
//! which this host still runs.

wit_bindgen::generate!({
    path: "wit",
    world: "parser",
});

/// The contract version this crate's `wit/` declares.
const CONTRACT: &str = "0.1.0";

include!("../../contract.rs");
