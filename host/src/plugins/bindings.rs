//! Rust bindings of `wit/plugin.wit`, generated at compile time.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "parser-plugin",
});

pub use exports::medmemory::plugin::parser;
pub use medmemory::plugin::{config, log, types};
