//! How a call ended: the failure codes callers see, and what a call cost.

use std::time::Duration;

use serde::Serialize;

use super::bindings::types;

/// Why a plugin call failed. Each has a stable code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginFailure {
    /// The fuel budget ran out.
    #[error("the plugin ran out of fuel")]
    FuelExhausted,
    /// The wall-clock deadline passed.
    #[error("the plugin exceeded its deadline")]
    DeadlineExceeded,
    /// The plugin tried to grow memory past its cap.
    #[error("the plugin exceeded its memory limit")]
    MemoryExceeded,
    /// The plugin trapped (panic, unreachable, stack overflow, ...).
    #[error("the plugin trapped: {0}")]
    Trapped(String),
    /// The input is larger than plugins may receive.
    #[error("the input is larger than the plugin input limit")]
    InputTooLarge,
    /// The plugin returned more than the output limit.
    #[error("the plugin output exceeded the limit")]
    OutputTooLarge,
    /// The plugin returned output that breaks the contract.
    #[error("the plugin returned invalid output: {0}")]
    InvalidOutput(String),
    /// The plugin rejected the input as malformed.
    #[error("the plugin rejected the input: {0}")]
    InvalidInput(String),
    /// The plugin does not support this input.
    #[error("the plugin does not support this input: {0}")]
    Unsupported(String),
    /// The plugin reported an internal error or exhausted its own resources.
    #[error("the plugin failed: {0}")]
    Internal(String),
    /// The plugin kept failing and its circuit breaker is open.
    #[error("the plugin failed repeatedly and is paused; it will be retried later")]
    CircuitOpen,
    /// The call does not match the plugin's kind.
    #[error("the plugin is a {0}, not the kind this call needs")]
    WrongKind(&'static str),
}

impl PluginFailure {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            PluginFailure::FuelExhausted => "plugin_fuel_exhausted",
            PluginFailure::DeadlineExceeded => "plugin_deadline_exceeded",
            PluginFailure::MemoryExceeded => "plugin_memory_exceeded",
            PluginFailure::Trapped(_) => "plugin_trapped",
            PluginFailure::InputTooLarge => "plugin_input_too_large",
            PluginFailure::OutputTooLarge => "plugin_output_too_large",
            PluginFailure::InvalidOutput(_) => "plugin_invalid_output",
            PluginFailure::InvalidInput(_) => "plugin_invalid_input",
            PluginFailure::Unsupported(_) => "plugin_unsupported",
            PluginFailure::Internal(_) => "plugin_internal",
            PluginFailure::CircuitOpen => "plugin_circuit_open",
            PluginFailure::WrongKind(_) => "plugin_wrong_kind",
        }
    }

    /// Whether the plugin, not its input, is at fault (what the breaker counts).
    pub fn is_plugin_fault(&self) -> bool {
        matches!(
            self,
            PluginFailure::FuelExhausted
                | PluginFailure::DeadlineExceeded
                | PluginFailure::MemoryExceeded
                | PluginFailure::Trapped(_)
                | PluginFailure::OutputTooLarge
                | PluginFailure::InvalidOutput(_)
                | PluginFailure::Internal(_)
        )
    }
}

impl From<types::PluginError> for PluginFailure {
    fn from(e: types::PluginError) -> Self {
        match e {
            types::PluginError::InvalidInput(m) => PluginFailure::InvalidInput(m),
            types::PluginError::Unsupported(m) => PluginFailure::Unsupported(m),
            types::PluginError::ResourceExhausted(m) | types::PluginError::Internal(m) => {
                PluginFailure::Internal(m)
            }
        }
    }
}

/// What a call cost, for metrics, audit and the plugin author.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallOutcome {
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall time of instantiate + call.
    pub elapsed: Duration,
    /// Peak linear memory in bytes.
    pub peak_memory_bytes: usize,
    /// Log messages the plugin wrote, as (level, message): kept for the author
    /// and the CLI, never written to the host's log.
    pub logs: Vec<(String, String)>,
    /// Log messages dropped past the cap.
    pub logs_dropped: usize,
    /// Chunk ids the host's search handed to a retriever during the call.
    pub chunks_seen: Vec<String>,
    /// Record ids the host's `records` handed to a retriever during the call.
    pub records_seen: Vec<String>,
    /// Results the host ignored: ids not handed out, non-finite scores,
    /// invalid cards.
    pub ignored: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plugin_faults_trip_the_breaker() {
        assert!(PluginFailure::FuelExhausted.is_plugin_fault());
        assert!(PluginFailure::Trapped("x".into()).is_plugin_fault());
        assert!(!PluginFailure::InvalidInput("x".into()).is_plugin_fault());
        assert!(!PluginFailure::InputTooLarge.is_plugin_fault());
        assert!(!PluginFailure::CircuitOpen.is_plugin_fault());
    }
}
