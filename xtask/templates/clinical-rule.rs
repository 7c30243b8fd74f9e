//! `{{name}}`: a MedMemory clinical-rule plugin.
//!
//! Scaffolded by `cargo xtask plugin new clinical-rule {{name}}`. It raises a
//! warning card when the patient's latest HbA1c (LOINC 4548-4) is above a
//! threshold that each clinic can set (`threshold`, default 8.0). Rules must
//! be deterministic: use `request.now`, never a clock.
//!
//! - Test it natively: `cargo test`
//! - Build the component: `cargo build --release --target wasm32-wasip2`
//! - Try it: `medmemory plugin run <target>/wasm32-wasip2/release/{{crate}}.wasm --input request.json --config threshold=7.5`
//! - Install it: `medmemory plugin install <the .wasm>` or `POST /api/v1/plugins`

use medmemory_plugin_sdk::rule::{
    Card, Evaluation, Guest, HookRequest, Indicator, PluginError, PluginInfo, Service, config,
};
use medmemory_plugin_sdk::systems;

/// The threshold when the clinic has not set one.
const DEFAULT_THRESHOLD: f64 = 8.0;

struct Plugin;

impl Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo::clinical_rule(
            "{{name}}",
            env!("CARGO_PKG_VERSION"),
            "Warns when the latest HbA1c is above the clinic's threshold.",
        )
    }

    fn services() -> Vec<Service> {
        vec![Service {
            id: "{{name}}".into(),
            hook: "patient-view".into(),
            title: "HbA1c above target".into(),
            description: "Checks the latest HbA1c against the clinic's threshold.".into(),
            prefetch: Vec::new(),
            usage_requirements: None,
        }]
    }

    fn evaluate(request: HookRequest) -> Result<Evaluation, PluginError> {
        let threshold = match config::get("threshold") {
            Some(t) => t
                .parse::<f64>()
                .map_err(|_| PluginError::invalid("the `threshold` setting must be a number"))?,
            None => DEFAULT_THRESHOLD,
        };
        Ok(Evaluation::cards(check(&request, threshold)))
    }
}

medmemory_plugin_sdk::rule::export!(Plugin);

/// The cards for `request` at `threshold`.
pub fn check(request: &HookRequest, threshold: f64) -> Vec<Card> {
    let Some(latest) = request.patient.latest(systems::LOINC, "4548-4") else {
        return Vec::new();
    };
    let Some(value) = latest.record.value.as_ref().and_then(|v| v.value) else {
        return Vec::new();
    };
    if value <= threshold {
        return Vec::new();
    }
    let when = latest.record.effective.as_deref().unwrap_or("an unknown date");
    vec![
        Card::new(
            &format!("HbA1c {value}% is above the {threshold}% target"),
            Indicator::Warning,
            "{{name}}",
        )
        .detail(format!(
            "The latest HbA1c was {value}% on {when}. Consider reviewing diabetes therapy."
        ))
        .evidence([latest.id.as_str()]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use medmemory_plugin_sdk::rule::{
        ClinicalRecord, Coding, HookContext, PatientContext, PatientRecord, Quantity, RecordKind,
    };

    fn request(values: &[(&str, f64)]) -> HookRequest {
        HookRequest {
            service_id: "{{name}}".into(),
            hook: "patient-view".into(),
            hook_instance: "test".into(),
            now: "2025-01-01T00:00:00Z".into(),
            patient: PatientContext {
                id: "p".into(),
                birth_date: None,
                sex: None,
                records: values
                    .iter()
                    .enumerate()
                    .map(|(i, (when, value))| {
                        let mut r = ClinicalRecord::new(RecordKind::Observation, "HbA1c")
                            .code(Coding::new(systems::LOINC, "4548-4", None))
                            .value(Quantity::number(*value, Some("%")));
                        r.effective = Some((*when).to_owned());
                        PatientRecord { id: format!("r{i}"), record: r }
                    })
                    .collect(),
            },
            context: HookContext {
                user_id: None,
                encounter_id: None,
                draft_orders: Vec::new(),
                selections: Vec::new(),
            },
            prefetch: Vec::new(),
            new_records: Vec::new(),
        }
    }

    #[test]
    fn only_the_latest_value_counts() {
        assert_eq!(check(&request(&[("2024-01-01", 9.1), ("2024-06-01", 7.0)]), 8.0).len(), 0);
        let cards = check(&request(&[("2024-01-01", 7.0), ("2024-06-01", 9.1)]), 8.0);
        assert_eq!(cards.len(), 1);
        assert!(cards[0].summary.contains("9.1"));
        assert_eq!(cards[0].evidence, ["r1"]);
        assert!(check(&request(&[]), 8.0).is_empty());
    }
}
