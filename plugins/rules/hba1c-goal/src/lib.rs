//! `hba1c-goal`: for glycaemic control,
//! - a warning card when the latest HbA1c (LOINC 4548-4, 17856-6, 4549-2) is
//!   at or above the clinic's goal (`goal`, default 9 %);
//! - an info card when a patient with active diabetes (SNOMED CT 73211009,
//!   44054006, 46635009; ICD-10 E10, E11, E13; or a condition that says
//!   diabetes) has no HbA1c in the last `overdue_months` (default 6).

use medmemory_plugin_sdk::rule::{
    Card, Evaluation, Guest, HookRequest, Indicator, PatientContext, PatientRecord, PluginError,
    PluginInfo, RecordKind, Service, is_active, mentions, setting,
};
use medmemory_plugin_sdk::systems::{ICD10, LOINC, SNOMED};
use medmemory_plugin_sdk::values::epoch_day;

const HBA1C: [&str; 3] = ["4548-4", "17856-6", "4549-2"];
const DIABETES_SNOMED: [&str; 3] = ["73211009", "44054006", "46635009"];
const DIABETES_ICD10: [&str; 3] = ["E10", "E11", "E13"];

struct Hba1cGoal;

impl Guest for Hba1cGoal {
    fn describe() -> PluginInfo {
        PluginInfo::clinical_rule(
            "hba1c-goal",
            env!("CARGO_PKG_VERSION"),
            "HbA1c at or above the clinic's goal, or overdue for a patient with diabetes.",
        )
    }

    fn services() -> Vec<Service> {
        vec![Service {
            id: "hba1c-goal".into(),
            hook: "patient-view".into(),
            title: "HbA1c goal and follow-up".into(),
            description: "Flags an HbA1c at or above the goal, and diabetes without a recent HbA1c."
                .into(),
            prefetch: vec![
                (
                    "hba1c".into(),
                    "Observation?patient={{context.patientId}}&code=http://loinc.org|4548-4&_sort=-date&_count=1".into(),
                ),
                (
                    "conditions".into(),
                    "Condition?patient={{context.patientId}}&clinical-status=active".into(),
                ),
            ],
            usage_requirements: None,
        }]
    }

    fn evaluate(request: HookRequest) -> Result<Evaluation, PluginError> {
        let goal = setting("goal", 9.0)?;
        let months = setting("overdue_months", 6.0)?;
        let today =
            epoch_day(&request.now).ok_or_else(|| PluginError::invalid("`now` is not a date"))?;
        Ok(Evaluation::cards(check(
            &request.patient,
            goal,
            (today, months),
        )))
    }
}

medmemory_plugin_sdk::rule::export!(Hba1cGoal);

fn has_diabetes(patient: &PatientContext) -> Option<&PatientRecord> {
    patient.records.iter().find(|r| {
        r.record.kind == RecordKind::Condition
            && is_active(&r.record)
            && (mentions(&r.record, &["diabetes"])
                || r.record.codes.iter().any(|c| {
                    (c.system == SNOMED && DIABETES_SNOMED.contains(&c.code.as_str()))
                        || (c.system == ICD10
                            && DIABETES_ICD10.iter().any(|p| c.code.starts_with(p)))
                }))
    })
}

/// The cards for `patient` with an HbA1c `goal` (%), given today's day
/// number and how many months make an HbA1c overdue.
pub fn check(patient: &PatientContext, goal: f64, (today, months): (i64, f64)) -> Vec<Card> {
    let latest = patient.latest_of(LOINC, &HBA1C);
    let source = "MedMemory glycaemic control";
    if let Some(latest) = latest
        && let Some(value) = latest.record.value.as_ref().and_then(|v| v.value)
        && value >= goal
    {
        let when = latest
            .record
            .effective
            .as_deref()
            .unwrap_or("an unknown date");
        return vec![
            Card::new(
                &format!("HbA1c {value} % is at or above the goal of {goal} %"),
                Indicator::Warning,
                source,
            )
            .detail(format!(
                "The latest HbA1c was {value} % on {when}. Review the treatment plan and adherence."
            ))
            .evidence([latest.id.as_str()]),
        ];
    }
    let Some(diabetes) = has_diabetes(patient) else {
        return Vec::new();
    };
    let recent = latest
        .and_then(|l| l.record.effective.as_deref())
        .and_then(epoch_day)
        .is_some_and(|day| (today - day) as f64 <= months * 30.44);
    if recent {
        return Vec::new();
    }
    let mut evidence = vec![diabetes.id.as_str()];
    evidence.extend(latest.map(|l| l.id.as_str()));
    vec![
        Card::new(
            &format!("No HbA1c in the last {months} months for a patient with diabetes"),
            Indicator::Info,
            source,
        )
        .detail(format!(
            "The record lists **{}**; the last HbA1c is {}. Order one.",
            diabetes.record.display,
            latest
                .and_then(|l| l.record.effective.as_deref())
                .map_or("missing".to_owned(), |w| format!("from {w}"))
        ))
        .evidence(evidence),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use medmemory_plugin_sdk::rule::{ClinicalRecord, Coding, Quantity};

    fn record(id: &str, r: ClinicalRecord) -> PatientRecord {
        PatientRecord {
            id: id.into(),
            record: r,
        }
    }

    fn hba1c(id: &str, when: &str, value: f64) -> PatientRecord {
        let mut r = ClinicalRecord::new(RecordKind::Observation, "Hemoglobin A1c")
            .code(Coding::new(LOINC, "4548-4", None))
            .value(Quantity::number(value, Some("%")));
        r.effective = Some(when.into());
        record(id, r)
    }

    fn diabetes() -> PatientRecord {
        let mut r = ClinicalRecord::new(RecordKind::Condition, "Type 2 diabetes mellitus")
            .code(Coding::new(SNOMED, "44054006", None));
        r.status = Some("active".into());
        record("dm", r)
    }

    #[test]
    fn a_latest_hba1c_at_the_goal_warns() {
        let today = epoch_day("2024-06-01").unwrap();
        let p = PatientContext::of(vec![
            hba1c("old", "2023-01-01", 10.1),
            hba1c("new", "2024-05-01", 9.4),
        ]);
        let cards = check(&p, 9.0, (today, 6.0));
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].indicator, Indicator::Warning);
        assert_eq!(
            cards[0].summary,
            "HbA1c 9.4 % is at or above the goal of 9 %"
        );
        assert_eq!(cards[0].evidence, ["new"]);
        assert!(
            check(&p, 10.0, (today, 6.0)).is_empty(),
            "a clinic's own goal"
        );
        let improved = PatientContext::of(vec![
            hba1c("a", "2023-01-01", 10.1),
            hba1c("b", "2024-05-01", 7.0),
        ]);
        assert!(check(&improved, 9.0, (today, 6.0)).is_empty());
    }

    #[test]
    fn diabetes_without_a_recent_hba1c_is_overdue() {
        let today = epoch_day("2024-06-01").unwrap();
        let overdue = PatientContext::of(vec![diabetes(), hba1c("a", "2023-10-01", 7.0)]);
        let cards = check(&overdue, 9.0, (today, 6.0));
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].indicator, Indicator::Info);
        assert_eq!(cards[0].evidence, ["dm", "a"]);
        let never = PatientContext::of(vec![diabetes()]);
        assert!(
            check(&never, 9.0, (today, 6.0))[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("missing")
        );
        let recent = PatientContext::of(vec![diabetes(), hba1c("a", "2024-04-01", 7.0)]);
        assert!(check(&recent, 9.0, (today, 6.0)).is_empty());
        assert!(
            check(
                &PatientContext::of(vec![hba1c("a", "2020-01-01", 6.0)]),
                9.0,
                (today, 6.0)
            )
            .is_empty(),
            "no diabetes"
        );
    }
}
