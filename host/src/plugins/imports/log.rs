//! `log`: messages a plugin writes, kept per call for its author and counted;
//! never written to the server's log.

use crate::plugins::bindings::log;
use crate::plugins::sandbox::CallState;

/// Log messages kept per call; more are counted but dropped.
pub const MAX_LOG_MESSAGES: usize = 64;
/// Bytes of log text kept per call.
pub const MAX_LOG_BYTES: usize = 16 * 1024;

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        let fits =
            self.logs.len() < MAX_LOG_MESSAGES && self.log_bytes + message.len() <= MAX_LOG_BYTES;
        metrics::counter!("plugin_log_messages_total").increment(1);
        if !fits {
            self.logs_dropped += 1;
            return;
        }
        self.log_bytes += message.len();
        self.logs
            .push((format!("{level:?}").to_lowercase(), message));
    }
}
