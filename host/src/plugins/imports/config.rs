//! `config`: the calling clinic's settings for this plugin, read-only.

use crate::plugins::bindings::config;
use crate::plugins::sandbox::CallState;

impl config::Host for CallState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn all(&mut self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
