//! `penicillin-allergy`: when a clinician selects or signs an order for a
//! penicillin-class drug (amoxicillin, ampicillin, penicillin V/G,
//! piperacillin, ...) and the patient has an active penicillin-class
//! allergy (in the record or in the prefetch), a warning card whose
//! recommended suggestion deletes the draft order, with override reasons.
//! On `order-select` only the orders just selected count.

use medmemory_plugin_sdk::rule::{
    Action, ActionType, Card, Coding, DraftOrder, Evaluation, Guest, HookRequest, Indicator,
    PluginError, PluginInfo, RecordKind, SelectionBehavior, Service, Suggestion, is_active,
    mentions,
};

/// Words naming a penicillin-class drug or allergy.
pub const PENICILLINS: [&str; 12] = [
    "penicillin",
    "amoxicillin",
    "ampicillin",
    "piperacillin",
    "nafcillin",
    "oxacillin",
    "dicloxacillin",
    "cloxacillin",
    "flucloxacillin",
    "ticarcillin",
    "augmentin",
    "benzylpenicillin",
];

const OVERRIDE_SYSTEM: &str = "urn:medmemory:cds:override-reason";

struct PenicillinAllergy;

fn service(hook: &str) -> Service {
    Service {
        id: format!("penicillin-allergy-{hook}"),
        hook: hook.into(),
        title: "Penicillin allergy and penicillin-class orders".into(),
        description:
            "Warns when a penicillin-class drug is ordered for a patient allergic to penicillins."
                .into(),
        prefetch: vec![(
            "allergies".into(),
            "AllergyIntolerance?patient={{context.patientId}}".into(),
        )],
        usage_requirements: None,
    }
}

impl Guest for PenicillinAllergy {
    fn describe() -> PluginInfo {
        PluginInfo::clinical_rule(
            "penicillin-allergy",
            env!("CARGO_PKG_VERSION"),
            "Penicillin-class orders for patients allergic to penicillins.",
        )
    }

    fn services() -> Vec<Service> {
        vec![service("order-select"), service("order-sign")]
    }

    fn evaluate(request: HookRequest) -> Result<Evaluation, PluginError> {
        Ok(Evaluation::cards(check(&request)))
    }
}

medmemory_plugin_sdk::rule::export!(PenicillinAllergy);

/// The `Type/id` of a draft order, if it has an id.
fn reference(order: &DraftOrder) -> Option<String> {
    order
        .id
        .as_ref()
        .map(|id| format!("{}/{id}", order.resource_type))
}

/// The penicillin-class drug a draft order names, if any.
fn penicillin_in(order: &DraftOrder) -> Option<&'static str> {
    let text = match &order.record {
        Some(r) => format!("{} {}", r.display, order.fhir_json).to_lowercase(),
        None => order.fhir_json.to_lowercase(),
    };
    PENICILLINS.iter().copied().find(|w| text.contains(w))
}

fn reason(code: &str, display: &str) -> Coding {
    Coding::new(OVERRIDE_SYSTEM, code, Some(display))
}

/// The cards for one hook request.
pub fn check(request: &HookRequest) -> Vec<Card> {
    let allergy = request.patient.records.iter().find(|r| {
        r.record.kind == RecordKind::Allergy
            && is_active(&r.record)
            && mentions(&r.record, &PENICILLINS)
    });
    let prefetched = request
        .prefetch
        .iter()
        .find(|r| r.kind == RecordKind::Allergy && is_active(r) && mentions(r, &PENICILLINS));
    let allergy_label = match (allergy, prefetched) {
        (Some(a), _) => a.record.display.clone(),
        (None, Some(p)) => p.display.clone(),
        (None, None) => return Vec::new(),
    };
    let selected = |order: &DraftOrder| {
        request.hook != "order-select"
            || request.context.selections.is_empty()
            || reference(order).is_some_and(|r| request.context.selections.contains(&r))
    };
    let mut cards = Vec::new();
    for order in request.context.draft_orders.iter().filter(|o| selected(o)) {
        let Some(drug) = penicillin_in(order) else {
            continue;
        };
        let mut drug_name = drug.to_owned();
        drug_name[..1].make_ascii_uppercase();
        let mut card = Card::new(
            &format!("{drug_name} ordered for a patient allergic to penicillin"),
            Indicator::Warning,
            "MedMemory drug-allergy check",
        )
        .detail(format!(
            "The record lists an allergy or intolerance to **{allergy_label}**. {drug_name} is a penicillin-class drug; cross-reactivity is expected. Consider a non-beta-lactam alternative."
        ))
        .evidence(allergy.map(|a| a.id.as_str()));
        if let Some(target) = reference(order) {
            card.suggestions = vec![Suggestion {
                label: format!("Remove the {drug} order"),
                uuid: None,
                is_recommended: true,
                actions: vec![Action {
                    action_type: ActionType::Delete,
                    description: format!("Remove the draft {drug} order"),
                    resource_json: None,
                    resource_id: Some(target),
                }],
            }];
            card.selection_behavior = Some(SelectionBehavior::AtMostOne);
        }
        card.override_reasons = vec![
            reason("tolerated-before", "Patient has tolerated this drug before"),
            reason(
                "allergy-doubtful",
                "Allergy history is doubtful or not confirmed",
            ),
            reason(
                "benefit-outweighs-risk",
                "Benefit outweighs the risk; will monitor",
            ),
        ];
        cards.push(card);
    }
    cards
}

#[cfg(test)]
mod tests;
