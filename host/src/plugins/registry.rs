//! Installed plugins: vetted, compiled once into a host-owned cache, described.
//!
//! A component is refused at install if it is not a component, imports a WASI
//! interface outside the granted set (files, sockets, HTTP), does not export a
//! semver-compatible `medmemory:plugin` world, or fails to compile. Compiled
//! code is cached under the data folder keyed by the component's SHA-256 and the
//! engine's compatibility hash; uploaded precompiled code is never accepted.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::bindings::{ParserPluginPre, types};
use super::engine::{CallState, PluginHost};

/// WASI interfaces a plugin may never import.
const FORBIDDEN_IMPORTS: [&str; 3] = ["wasi:filesystem", "wasi:sockets", "wasi:http"];

/// What the registry knows about an installed plugin.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginInfo {
    /// SHA-256 of the component, hex: the plugin's id.
    pub id: String,
    /// Name from `describe()`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// parser, clinical-rule or retriever.
    pub kind: String,
    /// One line for admins.
    pub description: String,
    /// Media types a parser handles.
    pub media_types: Vec<String>,
    /// The contract version it was built against.
    pub wit_version: String,
}

/// An installed, compiled, ready-to-instantiate plugin.
pub struct InstalledPlugin {
    /// What it is.
    pub info: PluginInfo,
    pub(crate) pre: ParserPluginPre<CallState>,
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The bytes are not a WebAssembly component.
    #[error("not a WebAssembly component (a core module or other bytes)")]
    NotAComponent,
    /// It imports an interface outside the granted set.
    #[error("the component imports `{0}`, which plugins may not use")]
    ForbiddenImport(String),
    /// It does not implement a compatible contract.
    #[error("the component does not implement medmemory:plugin parser@{compat}: {reason}", compat = super::WIT_VERSION)]
    IncompatibleContract {
        /// What wasmtime reported.
        reason: String,
    },
    /// Compilation failed.
    #[error("the component failed to compile: {0}")]
    Compile(String),
    /// `describe()` failed or returned nonsense.
    #[error("describe() failed: {0}")]
    Describe(String),
    /// Reading or writing the cache failed.
    #[error("plugin cache: {0}")]
    Cache(#[from] std::io::Error),
}

impl InstallError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            InstallError::NotAComponent => "plugin_not_a_component",
            InstallError::ForbiddenImport(_) => "plugin_forbidden_import",
            InstallError::IncompatibleContract { .. } => "plugin_incompatible_contract",
            InstallError::Compile(_) => "plugin_compile_failed",
            InstallError::Describe(_) => "plugin_describe_failed",
            InstallError::Cache(_) => "plugin_cache_failed",
        }
    }
}

/// The set of installed plugins.
pub struct Registry {
    host: Arc<PluginHost>,
    cache_dir: PathBuf,
    plugins: RwLock<Vec<Arc<InstalledPlugin>>>,
}

impl Registry {
    /// An empty registry compiling into `cache_dir`.
    pub fn new(host: Arc<PluginHost>, cache_dir: PathBuf) -> Registry {
        Registry {
            host,
            cache_dir,
            plugins: RwLock::new(Vec::new()),
        }
    }

    /// The plugin host.
    pub fn host(&self) -> &Arc<PluginHost> {
        &self.host
    }

    /// Installs every `*.wasm` in `dir`; returns how many were installed.
    /// A plugin that is refused is logged and skipped.
    pub fn install_dir(&self, dir: &Path) -> std::io::Result<usize> {
        let mut installed = 0;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(0);
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path)?;
            match self.install(&bytes) {
                Ok(plugin) => {
                    tracing::info!(plugin = %plugin.info.name, version = %plugin.info.version, id = %plugin.info.id, "plugin installed");
                    installed += 1;
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), code = e.code(), error = %e, "plugin refused")
                }
            }
        }
        Ok(installed)
    }

    /// Vets, compiles (or loads from cache), describes and registers a component.
    pub fn install(&self, bytes: &[u8]) -> Result<Arc<InstalledPlugin>, InstallError> {
        if !is_component(bytes) {
            return Err(InstallError::NotAComponent);
        }
        let id = hex::encode(Sha256::digest(bytes));
        if let Some(existing) = self.get(&id) {
            return Ok(existing);
        }
        let component = self.compile(&id, bytes)?;
        let engine = &self.host.engine;
        for (name, _) in component.component_type().imports(engine) {
            if FORBIDDEN_IMPORTS.iter().any(|f| name.starts_with(f)) {
                return Err(InstallError::ForbiddenImport(name.to_owned()));
            }
        }
        let instance_pre = self.host.linker.instantiate_pre(&component).map_err(|e| {
            InstallError::IncompatibleContract {
                reason: format!("{e:#}"),
            }
        })?;
        let pre =
            ParserPluginPre::new(instance_pre).map_err(|e| InstallError::IncompatibleContract {
                reason: format!("{e:#}"),
            })?;
        let described = self
            .host
            .describe(&pre)
            .map_err(|e| InstallError::Describe(e.to_string()))?;
        if described.name.trim().is_empty() || !matches!(described.kind, types::PluginKind::Parser)
        {
            return Err(InstallError::Describe(
                "a parser must have a name and kind `parser`".into(),
            ));
        }
        let plugin = Arc::new(InstalledPlugin {
            info: PluginInfo {
                id,
                name: described.name,
                version: described.version,
                kind: "parser".into(),
                description: described.description,
                media_types: described.media_types,
                wit_version: super::WIT_VERSION.into(),
            },
            pre,
        });
        let mut plugins = self.plugins.write().unwrap_or_else(|e| e.into_inner());
        plugins.retain(|p| p.info.name != plugin.info.name);
        plugins.push(plugin.clone());
        Ok(plugin)
    }

    /// Every installed plugin.
    pub fn list(&self) -> Vec<Arc<InstalledPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The plugin with this id.
    pub fn get(&self, id: &str) -> Option<Arc<InstalledPlugin>> {
        self.list().into_iter().find(|p| p.info.id == id)
    }

    /// The parser that handles `media_type`, if any.
    pub fn parser_for(&self, media_type: &str) -> Option<Arc<InstalledPlugin>> {
        self.list()
            .into_iter()
            .find(|p| p.info.media_types.iter().any(|m| m == media_type))
    }

    /// Loads compiled code from the cache, or compiles and caches it.
    fn compile(&self, id: &str, bytes: &[u8]) -> Result<Component, InstallError> {
        let engine = &self.host.engine;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let path = self
            .cache_dir
            .join(format!("{id}-{:016x}.cwasm", hasher.finish()));
        if path.exists() {
            // SAFETY: the file was written by this host, below its own data folder,
            // from a component it compiled with an engine of the same configuration
            // (the compatibility hash is part of the name).
            if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
                return Ok(component);
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(|e| InstallError::Compile(format!("{e:#}")))?;
        std::fs::create_dir_all(&self.cache_dir)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &compiled)?;
        std::fs::rename(&tmp, &path)?;
        // SAFETY: as above; these bytes were just produced by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
            .map_err(|e| InstallError::Compile(format!("{e:#}")))
    }
}

/// Whether `bytes` start with the WebAssembly component preamble
/// (`\0asm`, version 0x0d, layer 1), as opposed to a core module.
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0..4] == *b"\0asm" && bytes[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_modules_and_garbage_are_not_components() {
        assert!(!is_component(b"\0asm\x01\x00\x00\x00"));
        assert!(!is_component(b"hello world"));
        assert!(is_component(b"\0asm\x0d\x00\x01\x00rest"));
    }
}
