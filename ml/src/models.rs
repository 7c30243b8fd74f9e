//! The models a process has loaded, shared by every service that needs one.
//! Models load in the background after start; until then (or if loading
//! failed) callers see `None` and say so to their own callers.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::{Embedder, MODEL_ID};

#[derive(Default)]
struct Slots {
    embedder: OnceLock<Arc<Embedder>>,
    error: Mutex<Option<String>>,
}

/// A cheap handle on the loaded models.
#[derive(Clone, Default)]
pub struct Models(Arc<Slots>);

impl Models {
    /// The embedding model, once loaded.
    pub fn embedder(&self) -> Option<Arc<Embedder>> {
        self.0.embedder.get().cloned()
    }

    /// Why the embedding model is not loaded, if loading failed.
    pub fn error(&self) -> Option<String> {
        self.0
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the embedding model from `models_dir` off the async runtime;
    /// returns whether it is loaded.
    pub async fn load(&self, models_dir: PathBuf) -> bool {
        let loaded = tokio::task::spawn_blocking(move || Embedder::load(&models_dir)).await;
        match loaded {
            Ok(Ok(embedder)) => {
                let _ = self.0.embedder.set(Arc::new(embedder));
                tracing::info!(model = MODEL_ID, "embedding model loaded");
                true
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "embedding model unavailable");
                *self.0.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "model loader panicked");
                false
            }
        }
    }
}
