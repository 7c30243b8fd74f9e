//! The models a process has loaded, shared by every service that needs one.
//! Models load in the background after start; until then (or if loading
//! failed) callers see `None` and say so to their own callers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::llm::{LLM_ID, Llm};
use crate::{Embedder, MODEL_ID};

/// One model: loaded once, or why it could not be.
struct Slot<T> {
    model: OnceLock<Arc<T>>,
    error: Mutex<Option<String>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            model: OnceLock::new(),
            error: Mutex::new(None),
        }
    }
}

impl<T: Send + Sync + 'static> Slot<T> {
    fn get(&self) -> Option<Arc<T>> {
        self.model.get().cloned()
    }

    fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `load` off the async runtime; returns whether the model is loaded.
    async fn load<E: std::fmt::Display + Send + 'static>(
        &self,
        name: &str,
        load: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> bool {
        if self.model.get().is_some() {
            return true;
        }
        match tokio::task::spawn_blocking(load).await {
            Ok(Ok(model)) => {
                let _ = self.model.set(Arc::new(model));
                tracing::info!(model = name, "model loaded");
                true
            }
            Ok(Err(e)) => {
                tracing::error!(model = name, error = %e, "model unavailable");
                *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                false
            }
            Err(e) => {
                tracing::error!(model = name, error = %e, "model loader panicked");
                false
            }
        }
    }
}

#[derive(Default)]
struct Slots {
    embedder: Slot<Embedder>,
    llm: Slot<Llm>,
}

/// A cheap handle on the loaded models.
#[derive(Clone, Default)]
pub struct Models(Arc<Slots>);

impl Models {
    /// The embedding model, once loaded.
    pub fn embedder(&self) -> Option<Arc<Embedder>> {
        self.0.embedder.get()
    }

    /// Why the embedding model is not loaded, if loading failed.
    pub fn error(&self) -> Option<String> {
        self.0.embedder.error()
    }

    /// The local answer generator, once loaded.
    pub fn llm(&self) -> Option<Arc<Llm>> {
        self.0.llm.get()
    }

    /// Why the local generator is not loaded, if loading failed.
    pub fn llm_error(&self) -> Option<String> {
        self.0.llm.error()
    }

    /// Loads the embedding model from `models_dir` off the async runtime;
    /// returns whether it is loaded.
    pub async fn load(&self, models_dir: PathBuf) -> bool {
        self.0
            .embedder
            .load(MODEL_ID, move || Embedder::load(&models_dir))
            .await
    }

    /// Loads the local generator from `models_dir` off the async runtime;
    /// returns whether it is loaded.
    pub async fn load_llm(&self, models_dir: PathBuf) -> bool {
        self.0
            .llm
            .load(LLM_ID, move || Llm::load(&models_dir))
            .await
    }
}
