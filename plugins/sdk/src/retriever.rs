//! Bindings and helpers for the `retriever` world.

wit_bindgen::generate!({
    path: "../../wit",
    world: "retriever",
    pub_export_macro: true,
    export_macro_name: "export",
    default_bindings_module: "medmemory_plugin_sdk::retriever",
});

pub use exports::medmemory::plugin::evidence_retriever::{Guest, Query, Ranked};
pub use medmemory::plugin::search::{Hit, SearchMode, search};

shared_helpers!();

impl PluginInfo {
    /// Describes a retriever.
    pub fn retriever(name: &str, version: &str, description: &str) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            kind: PluginKind::Retriever,
            description: description.into(),
            media_types: Vec::new(),
        }
    }
}
