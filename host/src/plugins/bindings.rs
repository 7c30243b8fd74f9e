//! Rust bindings of the contract, generated at compile time: one module per
//! world of the current version (`wit/plugin.wit`, 0.2) and, in [`v0_1`], of
//! the frozen previous version (`wit/0.1/plugin.wit`). The shared interfaces
//! (`types`, `log`, `config`) of each version are generated once, in its
//! `parser`, and reused by its other worlds, so the host implements each
//! import once per version and records flow between worlds without
//! conversion.

/// The three worlds of the contract in the WIT folder `$path`.
macro_rules! worlds {
    ($path:literal) => {
        /// The `parser` world.
        pub mod parser {
            wasmtime::component::bindgen!({
                path: $path,
                world: "parser",
                additional_derives: [serde::Serialize, serde::Deserialize],
            });
        }

        /// The `clinical-rule` world.
        pub mod rule {
            wasmtime::component::bindgen!({
                path: $path,
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
                path: $path,
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
        pub use rule::exports::medmemory::plugin::clinical_rules;
    };
}

worlds!("../wit");
pub use retriever::medmemory::plugin::{records, search};

/// Contract 0.1, which this host still runs: its plugins' output is upgraded
/// to the current types by [`super::legacy`].
pub mod v0_1 {
    worlds!("../wit/0.1");
    pub use retriever::medmemory::plugin::search;
}
