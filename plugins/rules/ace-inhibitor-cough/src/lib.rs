//! `ace-inhibitor-cough`: an info card when an ACE inhibitor (lisinopril,
//! enalapril, ramipril, ...) is active and a cough is on record (an active
//! condition, or an observation or note that says cough): ACE inhibitors
//! cause a dry cough; an angiotensin receptor blocker is the usual switch.

use medmemory_plugin_sdk::rule::{
    Card, Evaluation, Guest, HookRequest, Indicator, Link, LinkType, PatientContext, PluginError,
    PluginInfo, RecordKind, Service, is_active, mentions,
};

/// ACE inhibitors by ingredient name.
pub const ACE_INHIBITORS: [&str; 10] = [
    "lisinopril",
    "enalapril",
    "ramipril",
    "captopril",
    "perindopril",
    "quinapril",
    "benazepril",
    "fosinopril",
    "trandolapril",
    "moexipril",
];

struct AceCough;

impl Guest for AceCough {
    fn describe() -> PluginInfo {
        PluginInfo::clinical_rule(
            "ace-inhibitor-cough",
            env!("CARGO_PKG_VERSION"),
            "An ACE inhibitor with a cough on record.",
        )
    }

    fn services() -> Vec<Service> {
        vec![Service {
            id: "ace-inhibitor-cough".into(),
            hook: "patient-view".into(),
            title: "ACE inhibitor and cough".into(),
            description:
                "Suggests considering an ARB when a patient on an ACE inhibitor has a cough.".into(),
            prefetch: Vec::new(),
            usage_requirements: None,
        }]
    }

    fn evaluate(request: HookRequest) -> Result<Evaluation, PluginError> {
        Ok(Evaluation::cards(check(&request.patient)))
    }
}

medmemory_plugin_sdk::rule::export!(AceCough);

/// The cards for `patient`.
pub fn check(patient: &PatientContext) -> Vec<Card> {
    let Some(ace) = patient
        .active_mentioning(RecordKind::Medication, &ACE_INHIBITORS)
        .into_iter()
        .next()
    else {
        return Vec::new();
    };
    let cough = patient.records.iter().find(|r| {
        mentions(&r.record, &["cough"])
            && match r.record.kind {
                RecordKind::Condition => is_active(&r.record),
                RecordKind::Observation | RecordKind::Note | RecordKind::Encounter => true,
                _ => false,
            }
    });
    let Some(cough) = cough else {
        return Vec::new();
    };
    let mut card = Card::new(
        "Cough in a patient on an ACE inhibitor: consider an ARB",
        Indicator::Info,
        "MedMemory medication review",
    )
    .detail(format!(
        "**{}** is active and the record mentions a cough ({}). A dry cough affects up to 1 in 10 patients on ACE inhibitors; an angiotensin receptor blocker is the usual alternative.",
        ace.record.display, cough.record.display
    ))
    .evidence([ace.id.as_str(), cough.id.as_str()]);
    card.links = vec![Link {
        label: "ACE inhibitor cough (StatPearls)".into(),
        url: "https://www.ncbi.nlm.nih.gov/books/NBK430896/".into(),
        link_type: LinkType::Absolute,
        app_context: None,
    }];
    vec![card]
}

#[cfg(test)]
mod tests {
    use super::*;
    use medmemory_plugin_sdk::rule::{ClinicalRecord, PatientRecord};

    fn record(id: &str, kind: RecordKind, display: &str, status: Option<&str>) -> PatientRecord {
        let mut r = ClinicalRecord::new(kind, display);
        r.status = status.map(str::to_owned);
        PatientRecord {
            id: id.into(),
            record: r,
        }
    }

    #[test]
    fn an_ace_inhibitor_with_a_cough_suggests_an_arb() {
        let on_ace = || {
            record(
                "ace",
                RecordKind::Medication,
                "Lisinopril 10 MG Oral Tablet",
                Some("active"),
            )
        };
        let cough = || record("c", RecordKind::Condition, "Dry cough", Some("active"));
        let cards = check(&PatientContext::of(vec![on_ace(), cough()]));
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].indicator, Indicator::Info);
        assert_eq!(cards[0].evidence, ["ace", "c"]);
        assert!(check(&PatientContext::of(vec![on_ace()])).is_empty());
        assert!(check(&PatientContext::of(vec![cough()])).is_empty());
        let stopped = record("ace", RecordKind::Medication, "Lisinopril", Some("stopped"));
        assert!(check(&PatientContext::of(vec![stopped, cough()])).is_empty());
        let resolved = record("c", RecordKind::Condition, "Cough", Some("resolved"));
        assert!(check(&PatientContext::of(vec![on_ace(), resolved])).is_empty());
    }
}
