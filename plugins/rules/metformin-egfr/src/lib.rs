//! `metformin-egfr`: a critical card when metformin (RxNorm ingredient 6809,
//! or any active medication whose name says metformin) is active and the
//! latest eGFR (LOINC 33914-3, 62238-1, 98979-8, 48642-3, 48643-1) is below
//! the clinic's limit (`egfr_limit`, default 30 mL/min/1.73m2), with a
//! recommended suggestion to stop it.

use medmemory_plugin_sdk::rule::{
    Action, ActionType, Card, Evaluation, Guest, HookRequest, Indicator, PatientContext,
    PluginError, PluginInfo, RecordKind, SelectionBehavior, Service, Suggestion, is_active,
    setting,
};
use medmemory_plugin_sdk::systems::{LOINC, RXNORM};

const EGFR: [&str; 5] = ["33914-3", "62238-1", "98979-8", "48642-3", "48643-1"];
const METFORMIN_INGREDIENT: &str = "6809";

struct MetforminEgfr;

impl Guest for MetforminEgfr {
    fn describe() -> PluginInfo {
        PluginInfo::clinical_rule(
            "metformin-egfr",
            env!("CARGO_PKG_VERSION"),
            "Metformin with an eGFR below the clinic's limit.",
        )
    }

    fn services() -> Vec<Service> {
        vec![Service {
            id: "metformin-egfr".into(),
            hook: "patient-view".into(),
            title: "Metformin and kidney function".into(),
            description: "Flags active metformin when the latest eGFR is below the limit.".into(),
            prefetch: vec![
                ("medications".into(), "MedicationRequest?patient={{context.patientId}}&status=active".into()),
                ("egfr".into(), "Observation?patient={{context.patientId}}&code=http://loinc.org|33914-3,http://loinc.org|62238-1,http://loinc.org|98979-8".into()),
            ],
            usage_requirements: None,
        }]
    }

    fn evaluate(request: HookRequest) -> Result<Evaluation, PluginError> {
        let limit = setting("egfr_limit", 30.0)?;
        Ok(Evaluation::cards(check(&request.patient, limit)))
    }
}

medmemory_plugin_sdk::rule::export!(MetforminEgfr);

/// The cards for `patient` at an eGFR `limit`.
pub fn check(patient: &PatientContext, limit: f64) -> Vec<Card> {
    let Some(egfr) = patient.latest_of(LOINC, &EGFR) else {
        return Vec::new();
    };
    let Some(value) = egfr.record.value.as_ref().and_then(|v| v.value) else {
        return Vec::new();
    };
    if value >= limit {
        return Vec::new();
    }
    let metformin = patient.records.iter().find(|r| {
        r.record.kind == RecordKind::Medication
            && is_active(&r.record)
            && (r
                .record
                .codes
                .iter()
                .any(|c| c.system == RXNORM && c.code == METFORMIN_INGREDIENT)
                || r.record.display.to_lowercase().contains("metformin"))
    });
    let Some(metformin) = metformin else {
        return Vec::new();
    };
    let when = egfr
        .record
        .effective
        .as_deref()
        .unwrap_or("an unknown date");
    let mut card = Card::new(
        &format!("Metformin with eGFR {value} (below {limit}): consider stopping"),
        Indicator::Critical,
        "MedMemory renal dosing check",
    )
    .detail(format!(
        "The latest eGFR was {value} on {when}. Metformin is contraindicated below 30 mL/min/1.73m2 (lactic acidosis risk); review **{}**.",
        metformin.record.display
    ))
    .evidence([metformin.id.as_str(), egfr.id.as_str()]);
    let stop = metformin.record.source_id.as_ref().map(|id| Action {
        action_type: ActionType::Delete,
        description: "Stop metformin".into(),
        resource_json: None,
        resource_id: Some(format!("MedicationRequest/{id}")),
    });
    if let Some(stop) = stop {
        card.suggestions = vec![Suggestion {
            label: "Stop metformin".into(),
            uuid: None,
            is_recommended: true,
            actions: vec![stop],
        }];
        card.selection_behavior = Some(SelectionBehavior::AtMostOne);
    }
    vec![card]
}

#[cfg(test)]
mod tests {
    use super::*;
    use medmemory_plugin_sdk::rule::{ClinicalRecord, Coding, PatientRecord, Quantity};

    fn patient(egfr: f64, metformin_status: &str) -> PatientContext {
        let mut lab = ClinicalRecord::new(RecordKind::Observation, "eGFR")
            .code(Coding::new(LOINC, "33914-3", None))
            .value(Quantity::number(egfr, Some("mL/min/1.73m2")));
        lab.effective = Some("2024-05-01".into());
        let mut drug = ClinicalRecord::new(RecordKind::Medication, "Metformin 500 MG Oral Tablet")
            .code(Coding::new(RXNORM, "860975", None));
        drug.status = Some(metformin_status.into());
        drug.source_id = Some("rx-met".into());
        PatientContext {
            id: "p".into(),
            birth_date: None,
            sex: None,
            records: vec![
                PatientRecord {
                    id: "egfr".into(),
                    record: lab,
                },
                PatientRecord {
                    id: "met".into(),
                    record: drug,
                },
            ],
        }
    }

    #[test]
    fn active_metformin_below_the_limit_gets_a_stop_suggestion() {
        let cards = check(&patient(24.0, "active"), 30.0);
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].evidence, ["met", "egfr"]);
        let stop = &cards[0].suggestions[0].actions[0];
        assert_eq!(
            stop.resource_id.as_deref(),
            Some("MedicationRequest/rx-met")
        );
        assert!(check(&patient(45.0, "active"), 30.0).is_empty());
        assert!(check(&patient(24.0, "stopped"), 30.0).is_empty());
        assert!(check(&patient(24.0, "active"), 20.0).is_empty());
    }
}
