//! `blood-pressure`: an info card when the last two blood pressure readings
//! are both at or above the clinic's limits (`systolic_limit`, default 140;
//! `diastolic_limit`, default 90 mmHg). A reading is a systolic (LOINC
//! 8480-6) and a diastolic (8462-4) taken at the same time, or a panel
//! (85354-9, 55284-4) whose value reads `150/95`.

use medmemory_plugin_sdk::rule::{
    Card, Evaluation, Guest, HookRequest, Indicator, PatientContext, PluginError, PluginInfo,
    Service, setting,
};
use medmemory_plugin_sdk::systems::LOINC;

const SYSTOLIC: &str = "8480-6";
const DIASTOLIC: &str = "8462-4";
const PANELS: [&str; 2] = ["85354-9", "55284-4"];

struct BloodPressure;

impl Guest for BloodPressure {
    fn describe() -> PluginInfo {
        PluginInfo::clinical_rule(
            "blood-pressure",
            env!("CARGO_PKG_VERSION"),
            "Blood pressure at or above the clinic's limits on the last two readings.",
        )
    }

    fn services() -> Vec<Service> {
        vec![Service {
            id: "blood-pressure".into(),
            hook: "patient-view".into(),
            title: "Raised blood pressure".into(),
            description: "Flags the last two blood pressure readings at or above 140/90.".into(),
            prefetch: vec![(
                "blood-pressure".into(),
                "Observation?patient={{context.patientId}}&code=http://loinc.org|85354-9,http://loinc.org|8480-6,http://loinc.org|8462-4&_sort=-date&_count=6".into(),
            )],
            usage_requirements: None,
        }]
    }

    fn evaluate(request: HookRequest) -> Result<Evaluation, PluginError> {
        let limits = (
            setting("systolic_limit", 140.0)?,
            setting("diastolic_limit", 90.0)?,
        );
        Ok(Evaluation::cards(check(&request.patient, limits)))
    }
}

medmemory_plugin_sdk::rule::export!(BloodPressure);

/// One reading: when, systolic and diastolic (either may be missing), and
/// the records it comes from.
#[derive(Debug, Default)]
struct Reading<'a> {
    when: &'a str,
    systolic: Option<f64>,
    diastolic: Option<f64>,
    records: Vec<&'a str>,
}

/// `150/95` (with or without spaces or a unit) as two numbers.
fn pair(text: &str) -> Option<(f64, f64)> {
    let (s, d) = text.split_once('/')?;
    let number = |t: &str| {
        t.trim()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .find(|p| !p.is_empty())?
            .parse::<f64>()
            .ok()
    };
    Some((number(s)?, number(d)?))
}

/// Readings from newest to oldest, grouped by time.
fn readings(patient: &PatientContext) -> Vec<Reading<'_>> {
    let mut out: Vec<Reading<'_>> = Vec::new();
    for r in &patient.records {
        let code = |codes: &[&str]| {
            r.record
                .codes
                .iter()
                .any(|c| c.system == LOINC && codes.contains(&c.code.as_str()))
        };
        let value = r.record.value.as_ref();
        let number = value.and_then(|v| v.value);
        let (systolic, diastolic) = if code(&[SYSTOLIC]) {
            (number, None)
        } else if code(&[DIASTOLIC]) {
            (None, number)
        } else if code(&PANELS) {
            match value.and_then(|v| v.text.as_deref()).and_then(pair) {
                Some((s, d)) => (Some(s), Some(d)),
                None => continue,
            }
        } else {
            continue;
        };
        let Some(when) = r.record.effective.as_deref() else {
            continue;
        };
        let at = match out.iter().position(|x| x.when == when) {
            Some(i) => i,
            None => {
                out.push(Reading {
                    when,
                    ..Reading::default()
                });
                out.len() - 1
            }
        };
        let reading = &mut out[at];
        reading.systolic = reading.systolic.or(systolic);
        reading.diastolic = reading.diastolic.or(diastolic);
        reading.records.push(r.id.as_str());
    }
    out.sort_by(|a, b| b.when.cmp(a.when));
    out
}

/// The cards for `patient` with (systolic, diastolic) limits.
pub fn check(patient: &PatientContext, (sys_limit, dia_limit): (f64, f64)) -> Vec<Card> {
    let all = readings(patient);
    let last: Vec<&Reading<'_>> = all.iter().take(2).collect();
    let raised = |r: &Reading<'_>| {
        r.systolic.is_some_and(|s| s >= sys_limit) || r.diastolic.is_some_and(|d| d >= dia_limit)
    };
    if last.len() < 2 || !last.iter().all(|r| raised(r)) {
        return Vec::new();
    }
    let show = |r: &Reading<'_>| {
        let part = |v: Option<f64>| v.map_or("?".to_owned(), |v| v.to_string());
        format!("{}/{} on {}", part(r.systolic), part(r.diastolic), r.when)
    };
    vec![
        Card::new(
            &format!("Blood pressure at or above {sys_limit}/{dia_limit} on the last two readings"),
            Indicator::Info,
            "MedMemory blood pressure",
        )
        .detail(format!(
            "Readings: {} and {} mmHg. Confirm with repeat or home readings and review treatment.",
            show(last[0]),
            show(last[1])
        ))
        .evidence(last.iter().flat_map(|r| r.records.iter().copied())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use medmemory_plugin_sdk::rule::{ClinicalRecord, Coding, PatientRecord, Quantity, RecordKind};

    fn obs(id: &str, code: &str, when: &str, value: Quantity) -> PatientRecord {
        let mut r = ClinicalRecord::new(RecordKind::Observation, "Blood pressure")
            .code(Coding::new(LOINC, code, None))
            .value(value);
        r.effective = Some(when.into());
        PatientRecord {
            id: id.into(),
            record: r,
        }
    }

    fn reading(n: usize, when: &str, s: f64, d: f64) -> Vec<PatientRecord> {
        vec![
            obs(
                &format!("s{n}"),
                SYSTOLIC,
                when,
                Quantity::number(s, Some("mm[Hg]")),
            ),
            obs(
                &format!("d{n}"),
                DIASTOLIC,
                when,
                Quantity::number(d, Some("mm[Hg]")),
            ),
        ]
    }

    #[test]
    fn two_raised_readings_in_a_row_raise_a_card() {
        let mut records = reading(1, "2024-01-01", 128.0, 80.0);
        records.extend(reading(2, "2024-02-01", 150.0, 85.0));
        records.extend(reading(3, "2024-03-01", 138.0, 92.0));
        let cards = check(&PatientContext::of(records), (140.0, 90.0));
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].indicator, Indicator::Info);
        assert_eq!(cards[0].evidence, ["s3", "d3", "s2", "d2"]);
        assert!(
            cards[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("138/92 on 2024-03-01")
        );
    }

    #[test]
    fn one_normal_reading_among_the_last_two_raises_nothing() {
        let mut records = reading(1, "2024-01-01", 160.0, 100.0);
        records.extend(reading(2, "2024-02-01", 150.0, 95.0));
        records.extend(reading(3, "2024-03-01", 128.0, 78.0));
        assert!(check(&PatientContext::of(records), (140.0, 90.0)).is_empty());
        assert!(
            check(
                &PatientContext::of(reading(1, "2024-01-01", 160.0, 100.0)),
                (140.0, 90.0)
            )
            .is_empty()
        );
    }

    #[test]
    fn panels_written_as_text_count() {
        let text = |t: &str| Quantity {
            value: None,
            text: Some(t.into()),
            unit: Some("mmHg".into()),
        };
        let records = vec![
            obs("a", "85354-9", "2024-01-01", text("152/96")),
            obs("b", "85354-9", "2024-02-01", text("145 / 88 mmHg")),
        ];
        assert_eq!(check(&PatientContext::of(records), (140.0, 90.0)).len(), 1);
        assert_eq!(pair("120/80"), Some((120.0, 80.0)));
        assert_eq!(pair("high"), None);
    }
}
