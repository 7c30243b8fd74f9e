//! Compiled plugins in this process: vetted, compiled once into a host-owned
//! cache, described.
//!
//! A component is refused at install if it is not a component, imports an
//! interface outside the granted set (no files, sockets or HTTP), does not export a
//! semver-compatible `medmemory:plugin` world, fails to compile, or describes
//! itself inconsistently. Compiled code is cached under the data folder keyed by
//! the component's SHA-256 and the engine's compatibility hash; uploaded
//! precompiled code is never accepted (the bytes must be a component).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::bindings::{clinical_rules, parser, retriever, rule, types, v0_1};
use super::cache::{CacheError, CacheStats, ComponentCache};
use super::contract::{self, Kind};
use super::engine::{PluginHost, Pre};

/// The only interfaces a plugin may import: the contract's host imports and
/// what Rust's std links (`wasi:cli`, `wasi:io`, `wasi:random`, `wasi:clocks`),
/// all backed by an empty, deterministic context. Anything else (files,
/// sockets, HTTP, key-value stores, ...) is refused at install.
const GRANTED_IMPORTS: [&str; 5] = [
    "medmemory:plugin/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:random/",
    "wasi:clocks/",
];

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
    pub kind: Kind,
    /// One line for admins.
    pub description: String,
    /// Media types a parser handles.
    pub media_types: Vec<String>,
    /// The contract version it was built against.
    pub wit_version: String,
    /// The CDS services of a clinical rule: (id, hook, title).
    pub services: Vec<ServiceInfo>,
    /// Size of the component in bytes.
    pub size_bytes: usize,
}

/// A CDS service a clinical-rule plugin offers.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ServiceInfo {
    /// Unique within the plugin.
    pub id: String,
    /// The hook it answers, e.g. `patient-view`.
    pub hook: String,
    /// Human-readable name.
    pub title: String,
    /// What it checks.
    pub description: String,
    /// The FHIR data it wants prefetched: key → query template.
    #[serde(default)]
    pub prefetch: std::collections::BTreeMap<String, String>,
    /// What an EHR must do to use it.
    #[serde(default)]
    pub usage_requirements: Option<String>,
}

/// An installed, compiled, ready-to-instantiate plugin.
pub struct InstalledPlugin {
    /// What it is.
    pub info: PluginInfo,
    /// The compiled component, ready to instantiate for a call.
    pub pre: Pre,
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The bytes are not a WebAssembly component.
    #[error("not a WebAssembly component (a core module, a precompiled artefact or other bytes)")]
    NotAComponent,
    /// It imports an interface outside the granted set.
    #[error("the component imports `{0}`, which plugins may not use")]
    ForbiddenImport(String),
    /// It does not implement a compatible contract.
    #[error("{0}")]
    IncompatibleContract(String),
    /// Compilation failed.
    #[error("the component failed to compile: {0}")]
    Compile(String),
    /// `describe()` failed or returned nonsense.
    #[error("describe() failed or is inconsistent: {0}")]
    Describe(String),
    /// Reading or writing the cache failed.
    #[error("plugin cache: {0}")]
    Cache(#[from] std::io::Error),
}

impl From<CacheError> for InstallError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Compile(m) => InstallError::Compile(m),
            CacheError::Io(e) => InstallError::from(e),
        }
    }
}

impl InstallError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            InstallError::NotAComponent => "plugin_not_a_component",
            InstallError::ForbiddenImport(_) => "plugin_forbidden_import",
            InstallError::IncompatibleContract(_) => "plugin_incompatible_contract",
            InstallError::Compile(_) => "plugin_compile_failed",
            InstallError::Describe(_) => "plugin_describe_failed",
            InstallError::Cache(_) => "plugin_cache_failed",
        }
    }
}

/// The plugins compiled in this process, by id.
pub struct Registry {
    host: Arc<PluginHost>,
    cache: ComponentCache,
    plugins: RwLock<HashMap<String, Arc<InstalledPlugin>>>,
}

impl Registry {
    /// An empty registry compiling into `cache_dir`.
    pub fn new(host: Arc<PluginHost>, cache_dir: PathBuf) -> Registry {
        Registry {
            host,
            cache: ComponentCache::new(cache_dir),
            plugins: RwLock::new(HashMap::new()),
        }
    }

    /// The plugin host.
    pub fn host(&self) -> &Arc<PluginHost> {
        &self.host
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
        let component = self.cache.load(&self.host.engine, &id, bytes)?;
        let engine = &self.host.engine;
        let ty = component.component_type();
        for (name, _) in ty.imports(engine) {
            if !GRANTED_IMPORTS.iter().any(|g| name.starts_with(g)) {
                return Err(InstallError::ForbiddenImport(name.to_owned()));
            }
        }
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
        let contract = contract::check(exports.iter().map(String::as_str))
            .map_err(|e| InstallError::IncompatibleContract(e.to_string()))?;
        let incompatible = |e: wasmtime::Error| {
            InstallError::IncompatibleContract(format!(
                "the component's imports or exports do not match medmemory:plugin@{}: {e:#}",
                contract.version
            ))
        };
        let instance_pre = self
            .host
            .linker
            .instantiate_pre(&component)
            .map_err(incompatible)?;
        let pre = match (contract.kind, contract.is_v0_1()) {
            (Kind::Parser, false) => parser::ParserPre::new(instance_pre).map(Pre::Parser),
            (Kind::ClinicalRule, false) => rule::ClinicalRulePre::new(instance_pre).map(Pre::Rule),
            (Kind::Retriever, false) => {
                retriever::RetrieverPre::new(instance_pre).map(Pre::Retriever)
            }
            (Kind::Parser, true) => v0_1::parser::ParserPre::new(instance_pre).map(Pre::ParserV0_1),
            (Kind::ClinicalRule, true) => {
                v0_1::rule::ClinicalRulePre::new(instance_pre).map(Pre::RuleV0_1)
            }
            (Kind::Retriever, true) => {
                v0_1::retriever::RetrieverPre::new(instance_pre).map(Pre::RetrieverV0_1)
            }
        }
        .map_err(incompatible)?;
        let described = self
            .host
            .describe(&pre)
            .map_err(|e| InstallError::Describe(e.to_string()))?;
        validate(&described.info, contract.kind, &described.services)?;
        let info = described.info;
        let plugin = Arc::new(InstalledPlugin {
            info: PluginInfo {
                id: id.clone(),
                name: info.name,
                version: info.version,
                kind: contract.kind,
                description: info.description,
                media_types: info.media_types,
                wit_version: contract.version,
                services: described
                    .services
                    .into_iter()
                    .map(|s| ServiceInfo {
                        id: s.id,
                        hook: s.hook,
                        title: s.title,
                        description: s.description,
                        prefetch: s.prefetch.into_iter().collect(),
                        usage_requirements: s.usage_requirements,
                    })
                    .collect(),
                size_bytes: bytes.len(),
            },
            pre,
        });
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, plugin.clone());
        Ok(plugin)
    }

    /// Installs the component in a file.
    pub fn install_file(&self, path: &Path) -> Result<Arc<InstalledPlugin>, InstallError> {
        self.install(&std::fs::read(path)?)
    }

    /// Every compiled plugin.
    pub fn list(&self) -> Vec<Arc<InstalledPlugin>> {
        let mut all: Vec<_> = self
            .plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| {
            a.info
                .name
                .cmp(&b.info.name)
                .then(a.info.id.cmp(&b.info.id))
        });
        all
    }

    /// The plugin with this id, if compiled here.
    pub fn get(&self, id: &str) -> Option<Arc<InstalledPlugin>> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// How many components this registry compiled and how many it loaded
    /// from the cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }
}

/// Checks what `describe()` said against what the component is.
fn validate(
    info: &types::PluginInfo,
    kind: Kind,
    services: &[clinical_rules::Service],
) -> Result<(), InstallError> {
    let bad = |m: String| Err(InstallError::Describe(m));
    let name_ok = !info.name.is_empty()
        && info.name.len() <= 64
        && info
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return bad(format!(
            "name {:?} must be 1 to 64 lowercase letters, digits and dashes",
            info.name
        ));
    }
    if info.version.trim().is_empty() || info.version.len() > 64 {
        return bad("version must be 1 to 64 characters".into());
    }
    let said = match info.kind {
        types::PluginKind::Parser => Kind::Parser,
        types::PluginKind::ClinicalRule => Kind::ClinicalRule,
        types::PluginKind::Retriever => Kind::Retriever,
    };
    if said != kind {
        return bad(format!(
            "describe() says {} but the component exports the {} interface",
            said.as_str(),
            kind.as_str()
        ));
    }
    if kind == Kind::Parser {
        let media_ok = !info.media_types.is_empty()
            && info.media_types.iter().all(|m| {
                m.len() <= 127
                    && m.split_once('/').is_some_and(|(a, b)| {
                        !a.is_empty() && !b.is_empty() && !m.contains(char::is_whitespace)
                    })
            });
        if !media_ok {
            return bad("a parser must list the media types it handles (type/subtype)".into());
        }
    }
    let mut ids = std::collections::HashSet::new();
    for service in services {
        // It becomes a URL segment of the CDS Hooks endpoint.
        let id_ok = !service.id.is_empty()
            && service.id.len() <= 64
            && service
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        if !id_ok || !ids.insert(service.id.as_str()) {
            return bad(format!(
                "service id {:?} must be 1 to 64 of A-Z a-z 0-9 - . _ and unique",
                service.id
            ));
        }
        let mut keys = std::collections::HashSet::new();
        let prefetch_ok = service.prefetch.len() <= 32
            && service.prefetch.iter().all(|(key, template)| {
                !key.is_empty() && key.len() <= 64 && template.len() <= 2048 && keys.insert(key)
            });
        if !prefetch_ok {
            return bad(format!(
                "service {:?}: at most 32 prefetch keys, unique, with templates under 2 KiB",
                service.id
            ));
        }
    }
    Ok(())
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
