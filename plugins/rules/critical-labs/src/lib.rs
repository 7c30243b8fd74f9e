//! `critical-labs`: a critical card when the latest potassium or sodium is
//! outside the clinic's limits (defaults: potassium below 3.0 or above 6.0
//! mmol/L, LOINC 2823-3 / 6298-4; sodium below 125 or above 155 mmol/L,
//! LOINC 2951-2 / 2947-0). Settings: `potassium_low`, `potassium_high`,
//! `sodium_low`, `sodium_high`.

use medmemory_plugin_sdk::rule::{
    Card, Evaluation, Guest, HookRequest, Indicator, PatientContext, PluginError, PluginInfo,
    Service, setting,
};
use medmemory_plugin_sdk::systems::LOINC;

/// One analyte: its name, LOINC codes, default limits and setting prefix.
struct Analyte {
    name: &'static str,
    codes: &'static [&'static str],
    low: f64,
    high: f64,
    setting: &'static str,
}

const ANALYTES: [Analyte; 2] = [
    Analyte {
        name: "Potassium",
        codes: &["2823-3", "6298-4"],
        low: 3.0,
        high: 6.0,
        setting: "potassium",
    },
    Analyte {
        name: "Sodium",
        codes: &["2951-2", "2947-0"],
        low: 125.0,
        high: 155.0,
        setting: "sodium",
    },
];

struct CriticalLabs;

impl Guest for CriticalLabs {
    fn describe() -> PluginInfo {
        PluginInfo::clinical_rule(
            "critical-labs",
            env!("CARGO_PKG_VERSION"),
            "Critical potassium and sodium results.",
        )
    }

    fn services() -> Vec<Service> {
        vec![Service {
            id: "critical-labs".into(),
            hook: "patient-view".into(),
            title: "Critical potassium and sodium".into(),
            description: "Flags a latest potassium or sodium outside the clinic's critical limits."
                .into(),
            prefetch: vec![(
                "observations".into(),
                "Observation?patient={{context.patientId}}&code=http://loinc.org|2823-3,http://loinc.org|6298-4,http://loinc.org|2951-2,http://loinc.org|2947-0".into(),
            )],
            usage_requirements: None,
        }]
    }

    fn evaluate(request: HookRequest) -> Result<Evaluation, PluginError> {
        let mut limits = Vec::new();
        for a in &ANALYTES {
            let low = setting(&format!("{}_low", a.setting), a.low)?;
            let high = setting(&format!("{}_high", a.setting), a.high)?;
            limits.push((low, high));
        }
        Ok(Evaluation::cards(check(&request.patient, &limits)))
    }
}

medmemory_plugin_sdk::rule::export!(CriticalLabs);

/// The cards for `patient` with each analyte's (low, high) limits.
pub fn check(patient: &PatientContext, limits: &[(f64, f64)]) -> Vec<Card> {
    let mut cards = Vec::new();
    for (a, &(low, high)) in ANALYTES.iter().zip(limits) {
        let Some(latest) = patient.latest_of(LOINC, a.codes) else {
            continue;
        };
        let Some(value) = latest.record.value.as_ref().and_then(|v| v.value) else {
            continue;
        };
        let (side, limit) = if value > high {
            ("high", high)
        } else if value < low {
            ("low", low)
        } else {
            continue;
        };
        let unit = latest
            .record
            .value
            .as_ref()
            .and_then(|v| v.unit.clone())
            .unwrap_or_else(|| "mmol/L".into());
        let when = latest
            .record
            .effective
            .as_deref()
            .unwrap_or("an unknown date");
        cards.push(
            Card::new(
                &format!("{} {value} {unit} is critically {side}", a.name),
                Indicator::Critical,
                "MedMemory critical labs",
            )
            .detail(format!(
                "The latest {} was {value} {unit} on {when}; the critical limit is {limit} {unit}. Repeat the test and review the patient now.",
                a.name.to_lowercase()
            ))
            .evidence([latest.id.as_str()]),
        );
    }
    cards
}

#[cfg(test)]
mod tests {
    use super::*;
    use medmemory_plugin_sdk::rule::{ClinicalRecord, Coding, PatientRecord, Quantity, RecordKind};

    fn patient(values: &[(&str, &str, f64)]) -> PatientContext {
        PatientContext {
            id: "p".into(),
            birth_date: None,
            sex: None,
            records: values
                .iter()
                .enumerate()
                .map(|(i, (code, when, value))| {
                    let mut r = ClinicalRecord::new(RecordKind::Observation, "lab")
                        .code(Coding::new(LOINC, code, None))
                        .value(Quantity::number(*value, Some("mmol/L")));
                    r.effective = Some((*when).to_owned());
                    PatientRecord {
                        id: format!("r{i}"),
                        record: r,
                    }
                })
                .collect(),
        }
    }

    const DEFAULTS: [(f64, f64); 2] = [(3.0, 6.0), (125.0, 155.0)];

    #[test]
    fn only_the_latest_value_outside_the_limits_raises_a_card() {
        let high = patient(&[("2823-3", "2024-01-01", 4.0), ("2823-3", "2024-02-01", 6.2)]);
        let cards = check(&high, &DEFAULTS);
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].summary, "Potassium 6.2 mmol/L is critically high");
        assert_eq!(cards[0].indicator, Indicator::Critical);
        assert_eq!(cards[0].evidence, ["r1"]);
        let settled = patient(&[("2823-3", "2024-02-01", 6.2), ("6298-4", "2024-03-01", 4.4)]);
        assert!(check(&settled, &DEFAULTS).is_empty());
        let low_sodium = patient(&[("2951-2", "2024-02-01", 121.0)]);
        assert!(
            check(&low_sodium, &DEFAULTS)[0]
                .summary
                .contains("critically low")
        );
        assert!(check(&low_sodium, &[(3.0, 6.0), (120.0, 155.0)]).is_empty());
    }
}
