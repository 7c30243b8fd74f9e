//! The CDS Hooks 2.0 service of a clinic: the services its enabled rule
//! plugins offer ([`Rules::offered`], discovery) and one hook call
//! ([`Rules::hook`]): the draft orders and prefetched resources read by the
//! clinic's FHIR parser, missing prefetch filled from the patient's memory
//! (or 412 when it cannot be), the rule run under the CDS deadline, and the
//! cards it returns stored so feedback can name them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{ARRIVAL_ONLY, Rules, raised};
use crate::db::alerts::RuleRun;
use crate::db::cds::IssuedCard;
use crate::db::patients::Patient;
use crate::plugins::clinical_rules::{
    ClinicalRecord, DraftOrder, Evaluation, HookContext, HookRequest,
};
use crate::plugins::{CallContext, CallFor, InstalledPlugin, ServiceInfo};

/// The CDS Hooks specification this service implements (discovery's
/// `version`).
pub const SPEC_VERSION: &str = "2.0.1";

/// FHIR resource types the patient's memory can answer a prefetch query
/// for (the records the parsers keep).
const FROM_MEMORY: [&str; 9] = [
    "Patient",
    "Observation",
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
    "AllergyIntolerance",
    "Encounter",
    "DocumentReference",
    "DiagnosticReport",
];

/// A CDS service as the clinic's discovery lists it.
#[derive(Clone)]
pub struct Offered {
    /// The id in the clinic's URL: the plugin's service id, prefixed with
    /// the plugin's name when two enabled plugins use the same one.
    pub id: String,
    /// The service as the plugin describes it.
    pub service: ServiceInfo,
    plugin: Arc<InstalledPlugin>,
    context: CallContext,
}

/// One hook call, as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct HookCall {
    pub hook: String,
    pub hook_instance: String,
    pub user_id: Option<String>,
    pub encounter_id: Option<String>,
    /// The resources of `context.draftOrders`.
    pub draft_orders: Vec<serde_json::Value>,
    pub selections: Vec<String>,
    /// What the client prefetched: `null` means "no data".
    pub prefetch: BTreeMap<String, serde_json::Value>,
}

/// What a hook call answers.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The rule's evaluation, the cards with the ids feedback names.
    pub evaluation: Evaluation,
    /// Whether the rule failed or ran out of time (the answer then has no
    /// cards: the EHR goes on without guidance).
    pub degraded: bool,
}

/// Why a hook call was not answered.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The request's `hook` is not the service's.
    #[error("this service answers {0}")]
    WrongHook(String),
    /// Declared prefetch that was neither sent nor is available here.
    #[error("prefetch not sent and not available: {0}")]
    PrefetchMissing(String),
    /// A store failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Whether the patient's memory can answer a prefetch template.
fn answerable(template: &str) -> bool {
    let resource = template
        .trim_start_matches('/')
        .split(['?', '/'])
        .next()
        .unwrap_or("");
    FROM_MEMORY.contains(&resource)
}

/// Builds a FHIR Bundle of `resources` and the byte range each one takes
/// in it, so records a parser returns map back to their resource.
fn bundle(resources: &[&serde_json::Value]) -> (String, Vec<Range<usize>>) {
    let mut doc = String::from(r#"{"resourceType":"Bundle","type":"collection","entry":["#);
    let mut ranges = Vec::with_capacity(resources.len());
    for (i, resource) in resources.iter().enumerate() {
        if i > 0 {
            doc.push(',');
        }
        doc.push_str(r#"{"resource":"#);
        let start = doc.len();
        doc.push_str(&resource.to_string());
        ranges.push(start..doc.len());
        doc.push('}');
    }
    doc.push_str("]}");
    (doc, ranges)
}

impl Rules {
    /// The CDS services the clinic's enabled rule plugins offer, in a
    /// stable order (plugin name, then the plugin's order).
    pub async fn offered(&self, clinic: Uuid) -> anyhow::Result<Vec<Offered>> {
        let mut offered = Vec::new();
        for (plugin, context) in self.enabled(clinic).await? {
            for service in plugin
                .info
                .services
                .iter()
                .filter(|s| s.hook != ARRIVAL_ONLY)
            {
                offered.push(Offered {
                    id: service.id.clone(),
                    service: service.clone(),
                    plugin: plugin.clone(),
                    context: context.clone(),
                });
            }
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for o in &offered {
            *seen.entry(o.id.clone()).or_default() += 1;
        }
        for o in &mut offered {
            if seen[&o.id] > 1 {
                o.id = format!("{}.{}", o.plugin.info.name, o.service.id);
            }
        }
        Ok(offered)
    }

    /// Answers one hook call of `offered` for `patient`. The rule runs
    /// with at most `deadline`; if it fails or runs out of time the answer
    /// has no cards. The cards handed out are stored for feedback.
    pub async fn hook(
        &self,
        patient: &Patient,
        offered: &Offered,
        call: HookCall,
        (who, issued_to, deadline): (&CallFor, &str, Duration),
    ) -> Result<Answer, HookError> {
        if call.hook != offered.service.hook {
            return Err(HookError::WrongHook(offered.service.hook.clone()));
        }
        let missing: Vec<&str> = offered
            .service
            .prefetch
            .iter()
            .filter(|(key, template)| !call.prefetch.contains_key(*key) && !answerable(template))
            .map(|(key, _)| key.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(HookError::PrefetchMissing(missing.join(", ")));
        }
        let clinic = patient.clinic_id;
        let started = std::time::Instant::now();
        let (orders, prefetch) = self.read_fhir(clinic, who, &call, deadline).await;
        let (context, known) = self.patient_context(clinic, patient).await?;
        let request = HookRequest {
            service_id: offered.service.id.clone(),
            hook: call.hook.clone(),
            hook_instance: call.hook_instance.clone(),
            now: crate::db::now().to_rfc3339(),
            patient: context,
            context: HookContext {
                user_id: call.user_id.clone(),
                encounter_id: call.encounter_id.clone(),
                draft_orders: orders,
                selections: call.selections.clone(),
            },
            prefetch,
            new_records: Vec::new(),
        };
        let mut ctx = offered.context.clone();
        let left = deadline.saturating_sub(started.elapsed()).as_millis() as u64;
        ctx.limits.deadline_ms = ctx.limits.deadline_ms.min(left.max(1));
        let mut evaluation = match self
            .plugins
            .evaluate(&offered.plugin, ctx, who, request)
            .await
        {
            Ok((evaluation, _)) => evaluation,
            Err(e) => {
                tracing::warn!(plugin = %offered.plugin.info.name, service = %offered.id, error = %e, "a CDS service's rule failed");
                metrics::counter!("cds_calls_degraded_total").increment(1);
                return Ok(Answer {
                    evaluation: Evaluation {
                        cards: Vec::new(),
                        system_actions: Vec::new(),
                    },
                    degraded: true,
                });
            }
        };
        let run = RuleRun {
            rule: offered.plugin.info.name.clone(),
            plugin_id: offered.plugin.info.id.clone(),
            plugin_version: offered.plugin.info.version.clone(),
            service_id: offered.service.id.clone(),
        };
        let mut issued = Vec::with_capacity(evaluation.cards.len());
        for card in &mut evaluation.cards {
            // Every card handed out gets a fresh id: feedback names it.
            let id = crate::db::new_id();
            card.uuid = Some(id.to_string());
            let alert = raised(&run, card, &known);
            issued.push(IssuedCard {
                id,
                service_id: offered.id.clone(),
                rule: run.rule.clone(),
                hook_instance: call.hook_instance.clone(),
                fingerprint: alert.fingerprint,
                indicator: alert.indicator,
                summary: card.summary.clone(),
                suggestions: card
                    .suggestions
                    .iter()
                    .filter_map(|s| s.uuid.clone())
                    .collect(),
            });
        }
        self.db
            .store_cds_cards(clinic, patient.id, issued_to, &issued)
            .await
            .map_err(anyhow::Error::from)?;
        metrics::histogram!("cds_call_duration_seconds").record(started.elapsed().as_secs_f64());
        Ok(Answer {
            evaluation,
            degraded: false,
        })
    }

    /// The draft orders (each with the record the clinic's FHIR parser made
    /// of it) and the records of the prefetched resources. Without a FHIR
    /// parser, or if it fails, the orders go as raw JSON and the prefetch
    /// adds nothing: the rule still sees the patient's memory.
    async fn read_fhir(
        &self,
        clinic: Uuid,
        who: &CallFor,
        call: &HookCall,
        deadline: Duration,
    ) -> (Vec<DraftOrder>, Vec<ClinicalRecord>) {
        let mut orders: Vec<DraftOrder> = call
            .draft_orders
            .iter()
            .map(|resource| DraftOrder {
                resource_type: resource
                    .get("resourceType")
                    .and_then(|t| t.as_str())
                    .unwrap_or("")
                    .to_owned(),
                id: resource
                    .get("id")
                    .and_then(|t| t.as_str())
                    .map(str::to_owned),
                record: None,
                fhir_json: resource.to_string(),
            })
            .collect();
        let mut resources: Vec<&serde_json::Value> = call.draft_orders.iter().collect();
        resources.extend(call.prefetch.values().filter(|v| v.is_object()));
        if resources.is_empty() {
            return (orders, Vec::new());
        }
        let parser = match self
            .plugins
            .parser_for(clinic, "application/fhir+json")
            .await
        {
            Ok(Some(parser)) => parser,
            _ => return (orders, Vec::new()),
        };
        let (doc, ranges) = bundle(&resources);
        let (plugin, mut ctx) = parser;
        ctx.limits.deadline_ms = ctx.limits.deadline_ms.min(deadline.as_millis() as u64 / 2);
        let parsed = match self
            .plugins
            .parse(
                &plugin,
                ctx,
                who,
                "application/fhir+json",
                Arc::new(doc.into_bytes()),
            )
            .await
        {
            Ok((parsed, _)) => parsed,
            Err(e) => {
                tracing::warn!(error = %e, "the FHIR parser could not read a CDS request's resources");
                metrics::counter!("cds_fhir_unread_total").increment(1);
                return (orders, Vec::new());
            }
        };
        let mut prefetch = Vec::new();
        for record in parsed.records {
            let start = record.source.map(|s| s.start as usize);
            let order = start.and_then(|at| {
                ranges[..orders.len()]
                    .iter()
                    .position(|range| range.contains(&at))
            });
            match order {
                Some(i) if orders[i].record.is_none() => orders[i].record = Some(record),
                Some(_) => {}
                None => prefetch.push(record),
            }
        }
        (orders, prefetch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_the_memory_holds_is_answerable() {
        assert!(answerable("Patient/{{context.patientId}}"));
        assert!(answerable(
            "Observation?patient={{context.patientId}}&code=4548-4"
        ));
        assert!(answerable(
            "AllergyIntolerance?patient={{context.patientId}}"
        ));
        assert!(!answerable(
            "PractitionerRole?_id={{userPractitionerRoleId}}"
        ));
        assert!(!answerable("Coverage?patient={{context.patientId}}"));
    }

    #[test]
    fn bundle_ranges_point_at_each_resource() {
        let a = serde_json::json!({"resourceType": "MedicationRequest", "id": "a"});
        let b = serde_json::json!({"resourceType": "AllergyIntolerance", "id": "b"});
        let (doc, ranges) = bundle(&[&a, &b]);
        let parsed: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(parsed["entry"][1]["resource"]["id"], "b");
        let first: serde_json::Value = serde_json::from_str(&doc[ranges[0].clone()]).unwrap();
        assert_eq!(first, a);
        let second: serde_json::Value = serde_json::from_str(&doc[ranges[1].clone()]).unwrap();
        assert_eq!(second, b);
    }
}
