//! Clinical rules: when records arrive in a patient's memory, the clinic's
//! enabled rule plugins run for that patient, and what they raise becomes
//! alerts.
//!
//! Owns: the rule runs on arrival ([`Rules::listen`], [`Rules::run`]) and
//! how a card becomes an alert (its fingerprint: the rule, the service and
//! the records it cites). Uses: `plugins` (audited calls in the sandbox),
//! `db` (records, alerts), `retrieval` (records as plugins see them),
//! `ingest` (arrivals). A rule that fails, loops or returns garbage fails
//! alone: the ingestion job has already succeeded, and the rule's existing
//! alerts are left as they were.

use std::collections::HashSet;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::Db;
use crate::db::alerts::{Raised, RuleRun};
use crate::db::patients::Patient;
use crate::db::records::RecordQuery;
use crate::ingest::Arrival;
use crate::plugins::clinical_rules::{
    Card, HookContext, HookRequest, Indicator, PatientContext, PatientRecord,
};
use crate::plugins::{CallContext, CallFor, InstalledPlugin, Kind, Plugins};
use crate::retrieval::wit_record;

pub mod cds;
pub mod wire;

/// The hooks whose services run when records arrive.
const ARRIVAL_HOOKS: [&str; 2] = ["patient-view", ARRIVAL_ONLY];
/// The hook of services that run on arrival only (never offered to CDS
/// clients).
const ARRIVAL_ONLY: &str = "medmemory-ingest";
/// Records of a patient a rule sees at most, newest first.
const MAX_RECORDS: usize = 2000;

/// The rules service.
pub struct Rules {
    db: Db,
    plugins: Arc<Plugins>,
}

fn indicator(i: Indicator) -> &'static str {
    match i {
        Indicator::Info => "info",
        Indicator::Warning => "warning",
        Indicator::Critical => "critical",
    }
}

/// One card as an alert: its evidence is the cited records that the request
/// held (anything else a rule names is dropped); the same rule, service and
/// evidence is the same alert.
fn raised(run: &RuleRun, card: &Card, known: &HashSet<Uuid>) -> Raised {
    let mut evidence: Vec<Uuid> = card
        .evidence
        .iter()
        .filter_map(|id| id.parse().ok())
        .filter(|id| known.contains(id))
        .collect();
    evidence.sort();
    evidence.dedup();
    let mut digest = Sha256::new();
    for part in [run.rule.as_str(), "\u{0}", run.service_id.as_str(), "\u{0}"] {
        digest.update(part.as_bytes());
    }
    if evidence.is_empty() {
        digest.update(card.summary.as_bytes());
    }
    for id in &evidence {
        digest.update(id.as_bytes());
    }
    Raised {
        fingerprint: hex::encode(digest.finalize()),
        indicator: indicator(card.indicator).to_owned(),
        summary: card.summary.clone(),
        detail: card.detail.clone(),
        source_label: card.source.label.clone(),
        evidence,
    }
}

impl Rules {
    pub fn new(db: Db, plugins: Arc<Plugins>) -> Rules {
        Rules { db, plugins }
    }

    /// The clinic's enabled rule plugins that this instance can load, by
    /// name, each with its call context.
    async fn enabled(
        &self,
        clinic: Uuid,
    ) -> anyhow::Result<Vec<(Arc<InstalledPlugin>, CallContext)>> {
        let mut choices: Vec<_> = self
            .plugins
            .for_clinic(clinic)
            .await?
            .into_iter()
            .filter(|c| c.enabled && c.plugin.kind == Kind::ClinicalRule.as_str())
            .collect();
        choices.sort_by(|a, b| a.plugin.name.cmp(&b.plugin.name));
        let mut loaded = Vec::with_capacity(choices.len());
        for choice in choices {
            loaded.extend(self.plugins.loaded(&choice).await);
        }
        Ok(loaded)
    }

    /// What a rule sees of a patient: their newest records (at most
    /// [`MAX_RECORDS`]) with ids, and those ids.
    async fn patient_context(
        &self,
        clinic: Uuid,
        person: &Patient,
    ) -> anyhow::Result<(PatientContext, HashSet<Uuid>)> {
        let query = RecordQuery {
            limit: MAX_RECORDS,
            ..RecordQuery::default()
        };
        let stored = self.db.query_records(clinic, person.id, &query).await?;
        let known: HashSet<Uuid> = stored.iter().map(|r| r.id).collect();
        let context = PatientContext {
            id: person.id.to_string(),
            birth_date: Some(person.birth_date.to_string()),
            sex: Some(person.sex.clone()),
            records: stored
                .iter()
                .map(|r| PatientRecord {
                    id: r.id.to_string(),
                    record: wit_record(r),
                })
                .collect(),
        };
        Ok((context, known))
    }

    /// Runs the rules for every arrival, until the sender is gone.
    pub async fn listen(self: Arc<Self>, mut arrivals: tokio::sync::broadcast::Receiver<Arrival>) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match arrivals.recv().await {
                Ok(arrival) => {
                    if let Err(e) = self.run(&arrival).await {
                        tracing::warn!(error = %e, clinic = %arrival.clinic, "rules could not run");
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!("rule_arrivals_missed_total").increment(missed);
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Runs the clinic's enabled rules for the patient of `arrival` and
    /// stores their alerts. Returns how many alerts opened and resolved.
    pub async fn run(&self, arrival: &Arrival) -> anyhow::Result<(usize, usize)> {
        let (clinic, patient) = (arrival.clinic, arrival.patient);
        let Some(person) = self.db.patient(clinic, patient).await? else {
            return Ok((0, 0));
        };
        let rules = self.enabled(clinic).await?;
        if rules.is_empty() {
            return Ok((0, 0));
        }
        let (context, known) = self.patient_context(clinic, &person).await?;
        let who = CallFor {
            clinic: Some(clinic),
            patient: Some(patient),
            request_id: None,
        };
        let (mut opened, mut resolved) = (0, 0);
        for (plugin, ctx) in rules {
            for service in plugin
                .info
                .services
                .iter()
                .filter(|s| ARRIVAL_HOOKS.contains(&s.hook.as_str()))
            {
                let request = HookRequest {
                    service_id: service.id.clone(),
                    hook: service.hook.clone(),
                    hook_instance: crate::db::new_id().to_string(),
                    now: crate::db::now().to_rfc3339(),
                    patient: context.clone(),
                    context: HookContext {
                        user_id: None,
                        encounter_id: None,
                        draft_orders: Vec::new(),
                        selections: Vec::new(),
                    },
                    prefetch: Vec::new(),
                    new_records: arrival.records.iter().map(Uuid::to_string).collect(),
                };
                let evaluation = match self
                    .plugins
                    .evaluate(&plugin, ctx.clone(), &who, request)
                    .await
                {
                    Ok((evaluation, _)) => evaluation,
                    Err(e) => {
                        // Its alerts stay as they were: a failed run proves nothing.
                        tracing::warn!(plugin = %plugin.info.name, service = %service.id, error = %e, "a rule failed");
                        metrics::counter!("rule_runs_failed_total").increment(1);
                        continue;
                    }
                };
                let run = RuleRun {
                    rule: plugin.info.name.clone(),
                    plugin_id: plugin.info.id.clone(),
                    plugin_version: plugin.info.version.clone(),
                    service_id: service.id.clone(),
                };
                let raised: Vec<Raised> = evaluation
                    .cards
                    .iter()
                    .map(|card| raised(&run, card, &known))
                    .collect();
                let (o, r) = self
                    .db
                    .record_rule_run(clinic, patient, &run, &raised)
                    .await?;
                opened += o;
                resolved += r;
            }
        }
        metrics::counter!("alerts_opened_total").increment(opened as u64);
        metrics::counter!("alerts_resolved_total").increment(resolved as u64);
        Ok((opened, resolved))
    }
}
