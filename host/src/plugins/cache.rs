//! The host-owned cache of compiled components: native code keyed by the
//! component's SHA-256 and the engine's compatibility hash, under the data
//! folder. Only this host writes it, and only from components it compiled, so
//! loading from it never trusts uploaded precompiled code.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

/// What the cache did since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Components compiled (and written to the cache).
    pub compiled: u64,
    /// Components loaded from the cache without compiling.
    pub loaded: u64,
}

/// Why a component could not be compiled or cached.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The engine refused the component.
    #[error("{0}")]
    Compile(String),
    /// The cache folder could not be written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Compiled components on disk.
pub struct ComponentCache {
    dir: PathBuf,
    compiled: AtomicU64,
    loaded: AtomicU64,
}

impl ComponentCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> ComponentCache {
        ComponentCache {
            dir,
            compiled: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
        }
    }

    /// What the cache did so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            loaded: self.loaded.load(Ordering::Relaxed),
        }
    }

    /// Loads the compiled code of component `id` from the cache, or compiles
    /// `bytes` and caches it.
    pub fn load(&self, engine: &Engine, id: &str, bytes: &[u8]) -> Result<Component, CacheError> {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let path = self
            .dir
            .join(format!("{id}-{:016x}.cwasm", hasher.finish()));
        if path.exists() {
            // SAFETY: the file was written by this host, below its own data folder,
            // from a component it compiled with an engine of the same configuration
            // (the compatibility hash is part of the name).
            if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
                self.loaded.fetch_add(1, Ordering::Relaxed);
                return Ok(component);
            }
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(|e| CacheError::Compile(format!("{e:#}")))?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &compiled)?;
        std::fs::rename(&tmp, &path)?;
        // SAFETY: as above; these bytes were just produced by this engine.
        unsafe { Component::deserialize(engine, &compiled) }
            .map_err(|e| CacheError::Compile(format!("{e:#}")))
    }
}
