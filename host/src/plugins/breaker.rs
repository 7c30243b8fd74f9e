//! A circuit breaker per plugin: a plugin whose calls keep failing in the
//! sandbox (fuel, deadline, memory, traps, broken output) is not called again
//! until a cool-down has passed; then one trial call decides whether it closes.
//!
//! Failures that are the input's fault (`plugin_invalid_input`,
//! `plugin_unsupported`, an input over the limit) do not count.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When the breaker trips and how long it stays open.
#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    /// Consecutive sandbox failures that open the breaker.
    pub threshold: u32,
    /// How long it stays open before a trial call.
    pub cool_down: Duration,
}

impl BreakerPolicy {
    /// The host's policy from the settings.
    pub fn from_settings(settings: &crate::config::Settings) -> BreakerPolicy {
        BreakerPolicy {
            threshold: settings.plugin_breaker_threshold.max(1),
            cool_down: Duration::from_millis(settings.plugin_breaker_cooldown_ms),
        }
    }
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            threshold: 5,
            cool_down: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    open_until: Option<Instant>,
    trial_running: bool,
}

/// The breaker of one plugin.
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: call.
    Call,
    /// Half-open: this call is the trial.
    Trial,
    /// Open: do not call.
    Refuse,
}

impl Breaker {
    /// Asks to make a call now.
    pub fn admit(&self, now: Instant) -> Admission {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.open_until {
            None => Admission::Call,
            Some(until) if now < until || state.trial_running => Admission::Refuse,
            Some(_) => {
                state.trial_running = true;
                Admission::Trial
            }
        }
    }

    /// Records how an admitted call ended; `sandbox_failure` is true for
    /// failures that are the plugin's fault.
    pub fn record(&self, policy: BreakerPolicy, sandbox_failure: bool, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.trial_running = false;
        if sandbox_failure {
            state.consecutive += 1;
            if state.consecutive >= policy.threshold || state.open_until.is_some() {
                state.open_until = Some(now + policy.cool_down);
            }
        } else {
            state.consecutive = 0;
            state.open_until = None;
        }
    }

    /// Whether the breaker is open (refusing calls) at `now`.
    pub fn is_open(&self, now: Instant) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.open_until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_after_the_threshold_and_recovers_after_a_good_trial() {
        let policy = BreakerPolicy {
            threshold: 3,
            cool_down: Duration::from_secs(10),
        };
        let breaker = Breaker::default();
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(breaker.admit(t0), Admission::Call);
            breaker.record(policy, true, t0);
        }
        // A success in between resets the count.
        breaker.record(policy, false, t0);
        for _ in 0..3 {
            assert_eq!(breaker.admit(t0), Admission::Call);
            breaker.record(policy, true, t0);
        }
        assert_eq!(breaker.admit(t0), Admission::Refuse);
        assert!(breaker.is_open(t0));
        let later = t0 + Duration::from_secs(11);
        assert_eq!(breaker.admit(later), Admission::Trial);
        // Only one trial at a time.
        assert_eq!(breaker.admit(later), Admission::Refuse);
        // A failed trial reopens it for another cool-down.
        breaker.record(policy, true, later);
        assert_eq!(breaker.admit(later), Admission::Refuse);
        let much_later = later + Duration::from_secs(11);
        assert_eq!(breaker.admit(much_later), Admission::Trial);
        breaker.record(policy, false, much_later);
        assert_eq!(breaker.admit(much_later), Admission::Call);
        assert!(!breaker.is_open(much_later));
    }
}
