use super::*;
use medmemory_plugin_sdk::rule::{ClinicalRecord, HookContext, PatientContext, PatientRecord};

fn order(id: &str, drug: &str) -> DraftOrder {
    DraftOrder {
        resource_type: "MedicationRequest".into(),
        id: Some(id.into()),
        record: Some(ClinicalRecord::new(
            RecordKind::Medication,
            format!("{drug} 500 MG Oral Capsule"),
        )),
        fhir_json: format!(r#"{{"resourceType":"MedicationRequest","id":"{id}"}}"#),
    }
}

fn request(
    hook: &str,
    allergies: &[(&str, Option<&str>)],
    orders: Vec<DraftOrder>,
    selections: &[&str],
) -> HookRequest {
    HookRequest {
        service_id: format!("penicillin-allergy-{hook}"),
        hook: hook.into(),
        hook_instance: "h".into(),
        now: "2025-01-01T00:00:00Z".into(),
        patient: PatientContext {
            id: "p".into(),
            birth_date: None,
            sex: None,
            records: allergies
                .iter()
                .enumerate()
                .map(|(i, (display, status))| {
                    let mut r = ClinicalRecord::new(RecordKind::Allergy, *display);
                    r.status = status.map(str::to_owned);
                    PatientRecord {
                        id: format!("a{i}"),
                        record: r,
                    }
                })
                .collect(),
        },
        context: HookContext {
            user_id: Some("Practitioner/1".into()),
            encounter_id: None,
            draft_orders: orders,
            selections: selections.iter().map(|s| (*s).to_owned()).collect(),
        },
        prefetch: Vec::new(),
        new_records: Vec::new(),
    }
}

#[test]
fn a_penicillin_order_for_an_allergic_patient_is_flagged_with_a_delete() {
    let cards = check(&request(
        "order-select",
        &[("Penicillin G", Some("active"))],
        vec![order("rx1", "Amoxicillin"), order("rx2", "Metformin")],
        &["MedicationRequest/rx1"],
    ));
    assert_eq!(cards.len(), 1);
    let card = &cards[0];
    assert_eq!(card.indicator, Indicator::Warning);
    assert!(
        card.summary.starts_with("Amoxicillin ordered"),
        "{}",
        card.summary
    );
    assert_eq!(card.evidence, ["a0"]);
    assert_eq!(card.selection_behavior, Some(SelectionBehavior::AtMostOne));
    let action = &card.suggestions[0].actions[0];
    assert_eq!(action.action_type, ActionType::Delete);
    assert_eq!(action.resource_id.as_deref(), Some("MedicationRequest/rx1"));
    assert!(card.override_reasons.iter().all(|r| r.display.is_some()));
}

#[test]
fn no_card_without_an_active_allergy_or_an_unselected_order() {
    let orders = || vec![order("rx1", "Amoxicillin")];
    assert!(check(&request("order-sign", &[], orders(), &[])).is_empty());
    assert!(
        check(&request(
            "order-sign",
            &[("Penicillin", Some("resolved"))],
            orders(),
            &[]
        ))
        .is_empty()
    );
    assert!(
        check(&request(
            "order-sign",
            &[("Sulfa drugs", None)],
            orders(),
            &[]
        ))
        .is_empty()
    );
    let other_selected = request(
        "order-select",
        &[("Penicillin", None)],
        orders(),
        &["MedicationRequest/rx9"],
    );
    assert!(check(&other_selected).is_empty());
    assert_eq!(
        check(&request(
            "order-sign",
            &[("Penicillin", None)],
            orders(),
            &[]
        ))
        .len(),
        1
    );
}
