//! Rust bindings of `wit/plugin.wit`, generated at compile time: one module per
//! world. The shared interfaces (`types`, `log`, `config`) are generated once,
//! in `parser`, and reused by the other two, so the host implements each import
//! once and records flow between worlds without conversion.

/// The `parser` world.
pub mod parser {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "parser",
        additional_derives: [serde::Serialize, serde::Deserialize],
    });
}

/// The `clinical-rule` world.
pub mod rule {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "clinical-rule",
        additional_derives: [serde::Serialize, serde::Deserialize],
        with: {
            "medmemory:plugin/types": super::parser::medmemory::plugin::types,
            "medmemory:plugin/log": super::parser::medmemory::plugin::log,
            "medmemory:plugin/config": super::parser::medmemory::plugin::config,
        },
    });
}

/// The `retriever` world.
pub mod retriever {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "retriever",
        additional_derives: [serde::Serialize, serde::Deserialize],
        with: {
            "medmemory:plugin/types": super::parser::medmemory::plugin::types,
            "medmemory:plugin/log": super::parser::medmemory::plugin::log,
            "medmemory:plugin/config": super::parser::medmemory::plugin::config,
        },
    });
}

pub use parser::exports::medmemory::plugin::document_parser;
pub use parser::medmemory::plugin::{config, log, types};
pub use retriever::exports::medmemory::plugin::evidence_retriever;
pub use retriever::medmemory::plugin::search;
pub use rule::exports::medmemory::plugin::clinical_rules;
