//! The limits of one plugin call: the host's (from the settings, the defaults
//! and the ceiling) and a clinic's overrides, which may only lower them.

use serde::{Deserialize, Serialize};

use crate::config::Settings;

/// The limits of one plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    /// Fuel units (roughly wasm instructions): the deterministic budget.
    pub fuel: u64,
    /// Linear memory cap in bytes; growing past it traps.
    pub memory_bytes: usize,
    /// Wall-clock deadline in milliseconds: the backstop.
    pub deadline_ms: u64,
    /// Largest input handed to a plugin, in bytes; larger inputs are refused
    /// before the call.
    pub max_input_bytes: usize,
    /// Largest output accepted from a plugin, in bytes of text.
    pub max_output_bytes: usize,
    /// Most records one parse may return (each is a row and an embedding).
    pub max_records: usize,
    /// Most text sections one parse may return.
    pub max_sections: usize,
}

/// A clinic's overrides of the limits; each must stay within the host's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Fuel per call.
    pub fuel: Option<u64>,
    /// Memory cap in bytes.
    pub memory_bytes: Option<usize>,
    /// Deadline in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Input cap in bytes.
    pub max_input_bytes: Option<usize>,
    /// Output cap in bytes.
    pub max_output_bytes: Option<usize>,
    /// Records per parse.
    pub max_records: Option<usize>,
    /// Sections per parse.
    pub max_sections: Option<usize>,
}

impl Limits {
    /// These limits with `overrides` applied, or the name of the first
    /// override outside `1..=self` (the host's limits are the ceiling).
    pub fn with(&self, overrides: &LimitOverrides) -> Result<Limits, &'static str> {
        fn pick<T: Copy + PartialOrd + From<u8>>(
            ceiling: T,
            wanted: Option<T>,
            name: &'static str,
        ) -> Result<T, &'static str> {
            match wanted {
                None => Ok(ceiling),
                Some(v) if v >= T::from(1) && v <= ceiling => Ok(v),
                Some(_) => Err(name),
            }
        }
        Ok(Limits {
            fuel: pick(self.fuel, overrides.fuel, "fuel")?,
            memory_bytes: pick(self.memory_bytes, overrides.memory_bytes, "memory_bytes")?,
            deadline_ms: pick(self.deadline_ms, overrides.deadline_ms, "deadline_ms")?,
            max_input_bytes: pick(
                self.max_input_bytes,
                overrides.max_input_bytes,
                "max_input_bytes",
            )?,
            max_output_bytes: pick(
                self.max_output_bytes,
                overrides.max_output_bytes,
                "max_output_bytes",
            )?,
            max_records: pick(self.max_records, overrides.max_records, "max_records")?,
            max_sections: pick(self.max_sections, overrides.max_sections, "max_sections")?,
        })
    }
}

impl Limits {
    /// The host's limits from the settings.
    pub fn from_settings(settings: &Settings) -> Limits {
        Limits {
            fuel: settings.plugin_fuel,
            memory_bytes: settings.plugin_memory_bytes,
            deadline_ms: settings.plugin_deadline_ms,
            max_input_bytes: settings.max_upload_bytes,
            max_output_bytes: settings.plugin_max_output_bytes,
            max_records: settings.plugin_max_records,
            max_sections: settings.plugin_max_sections,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_limits() -> Limits {
        Limits {
            fuel: 1000,
            memory_bytes: 1 << 20,
            deadline_ms: 100,
            max_input_bytes: 10,
            max_output_bytes: 10,
            max_records: 10,
            max_sections: 10,
        }
    }

    #[test]
    fn clinic_overrides_stay_under_the_host_ceiling() {
        let host = host_limits();
        let lower = LimitOverrides {
            fuel: Some(10),
            ..Default::default()
        };
        assert_eq!(host.with(&lower).unwrap().fuel, 10);
        assert_eq!(host.with(&LimitOverrides::default()).unwrap(), host);
        let higher = LimitOverrides {
            memory_bytes: Some(2 << 20),
            ..Default::default()
        };
        assert_eq!(host.with(&higher), Err("memory_bytes"));
        let zero = LimitOverrides {
            deadline_ms: Some(0),
            ..Default::default()
        };
        assert_eq!(host.with(&zero), Err("deadline_ms"));
    }
}
