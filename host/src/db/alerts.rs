//! Alerts: what the clinic's rule plugins raised for a patient, one row per
//! rule and evidence (the fingerprint), with its lifecycle: `open` →
//! `acknowledged` → `resolved`, or `overridden` with a reason; snoozed until
//! a time. A run of a rule stores what it raised and resolves what it no
//! longer raises, in one transaction. Erased with the patient (cascade).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{Db, WritePool, new_id, now};
use crate::on_pool;

/// An alert as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Alert {
    pub id: Uuid,
    pub patient_id: Uuid,
    /// The rule plugin's name.
    pub rule: String,
    /// The plugin (SHA-256) and its version when it last raised the alert.
    pub plugin_id: String,
    pub plugin_version: String,
    /// The CDS service that raised it.
    pub service_id: String,
    /// `info`, `warning` or `critical`.
    pub indicator: String,
    pub summary: String,
    pub detail: Option<String>,
    pub source_label: String,
    /// The records the alert is about.
    pub evidence: Vec<Uuid>,
    /// `open`, `acknowledged`, `resolved` or `overridden`.
    pub status: String,
    pub snoozed_until: Option<DateTime<Utc>>,
    /// Why it was last changed (override reason, resolution note).
    pub reason: Option<String>,
    /// Who changed it last (`system` for the host).
    pub changed_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What clinicians answered in their EHR to the CDS cards that carried
    /// this alert (CDS Hooks feedback), oldest first.
    pub feedback: Vec<super::cds::Feedback>,
    /// The rule, service and evidence it stands for.
    #[serde(skip)]
    pub fingerprint: String,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: Uuid,
    patient_id: Uuid,
    rule: String,
    plugin_id: String,
    plugin_version: String,
    service_id: String,
    fingerprint: String,
    indicator: String,
    summary: String,
    detail: Option<String>,
    source_label: String,
    evidence: String,
    status: String,
    snoozed_until: Option<DateTime<Utc>>,
    reason: Option<String>,
    changed_by: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, patient_id, rule, plugin_id, plugin_version, service_id, fingerprint, indicator, \
    summary, detail, source_label, evidence, status, snoozed_until, reason, changed_by, created_at, updated_at";

impl From<AlertRow> for Alert {
    fn from(r: AlertRow) -> Alert {
        Alert {
            id: r.id,
            patient_id: r.patient_id,
            rule: r.rule,
            plugin_id: r.plugin_id,
            plugin_version: r.plugin_version,
            service_id: r.service_id,
            indicator: r.indicator,
            summary: r.summary,
            detail: r.detail,
            source_label: r.source_label,
            // Written by us from typed ids.
            evidence: serde_json::from_str(&r.evidence).unwrap_or_default(),
            status: r.status,
            snoozed_until: r.snoozed_until,
            reason: r.reason,
            changed_by: r.changed_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            feedback: Vec::new(),
            fingerprint: r.fingerprint,
        }
    }
}

/// One card a rule raised, ready to store.
#[derive(Debug, Clone)]
pub struct Raised {
    pub fingerprint: String,
    pub indicator: String,
    pub summary: String,
    pub detail: Option<String>,
    pub source_label: String,
    pub evidence: Vec<Uuid>,
}

/// The rule run that raised some cards.
#[derive(Debug, Clone)]
pub struct RuleRun {
    pub rule: String,
    pub plugin_id: String,
    pub plugin_version: String,
    pub service_id: String,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub patient: Option<Uuid>,
    pub status: Option<String>,
    pub indicator: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Leave out alerts snoozed past this instant (the clinic's worklist
    /// passes now).
    pub awake_at: Option<DateTime<Utc>>,
}

impl Db {
    /// Stores what one run of a rule raised for a patient: new fingerprints
    /// open, resolved ones reopen, the others are refreshed (their status
    /// kept); open or acknowledged alerts of the rule's service that the run
    /// no longer raises are resolved. Returns (opened, resolved).
    pub async fn record_rule_run(
        &self,
        clinic: Uuid,
        patient: Uuid,
        run: &RuleRun,
        raised: &[Raised],
    ) -> sqlx::Result<(usize, usize)> {
        let at = now();
        let (mut opened, mut resolved) = (0, 0);
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            super::WriteTx::lock_clinic(&mut tx, clinic).await?;
            for r in raised {
                let evidence = serde_json::to_string(&r.evidence).unwrap_or_else(|_| "[]".into());
                let existing: Option<(Uuid, String)> = sqlx::query_as(
                    "SELECT id, status FROM alerts WHERE clinic_id = $1 AND patient_id = $2 AND fingerprint = $3",
                )
                .bind(clinic)
                .bind(patient)
                .bind(&r.fingerprint)
                .fetch_optional(&mut *tx)
                .await?;
                match existing {
                    None => {
                        sqlx::query(
                            "INSERT INTO alerts (id, clinic_id, patient_id, rule, plugin_id, plugin_version, service_id,
                             fingerprint, indicator, summary, detail, source_label, evidence, status, changed_by,
                             created_at, updated_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'open', 'system', $14, $14)",
                        )
                        .bind(new_id())
                        .bind(clinic)
                        .bind(patient)
                        .bind(&run.rule)
                        .bind(&run.plugin_id)
                        .bind(&run.plugin_version)
                        .bind(&run.service_id)
                        .bind(&r.fingerprint)
                        .bind(&r.indicator)
                        .bind(&r.summary)
                        .bind(&r.detail)
                        .bind(&r.source_label)
                        .bind(&evidence)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                        opened += 1;
                    }
                    Some((id, status)) => {
                        let reopen = status == "resolved";
                        sqlx::query(
                            "UPDATE alerts SET plugin_id = $1, plugin_version = $2, indicator = $3, summary = $4,
                             detail = $5, source_label = $6, evidence = $7, updated_at = $8,
                             status = CASE WHEN $9 THEN 'open' ELSE status END,
                             changed_by = CASE WHEN $9 THEN 'system' ELSE changed_by END,
                             reason = CASE WHEN $9 THEN NULL ELSE reason END
                             WHERE clinic_id = $10 AND id = $11",
                        )
                        .bind(&run.plugin_id)
                        .bind(&run.plugin_version)
                        .bind(&r.indicator)
                        .bind(&r.summary)
                        .bind(&r.detail)
                        .bind(&r.source_label)
                        .bind(&evidence)
                        .bind(at)
                        .bind(reopen)
                        .bind(clinic)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                        opened += usize::from(reopen);
                    }
                }
            }
            let live: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT id, fingerprint FROM alerts WHERE clinic_id = $1 AND patient_id = $2
                 AND rule = $3 AND service_id = $4 AND status IN ('open', 'acknowledged')",
            )
            .bind(clinic)
            .bind(patient)
            .bind(&run.rule)
            .bind(&run.service_id)
            .fetch_all(&mut *tx)
            .await?;
            for (id, fingerprint) in live {
                if raised.iter().any(|r| r.fingerprint == fingerprint) {
                    continue;
                }
                sqlx::query(
                    "UPDATE alerts SET status = 'resolved', changed_by = 'system',
                     reason = 'no longer raised by the rule', updated_at = $1
                     WHERE clinic_id = $2 AND id = $3",
                )
                .bind(at)
                .bind(clinic)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                resolved += 1;
            }
            tx.commit().await?;
        });
        Ok((opened, resolved))
    }

    /// A clinic's alerts (or one patient's): open first, critical first,
    /// newest first.
    pub async fn alerts(
        &self,
        clinic: Uuid,
        filter: &AlertFilter,
        limit: i64,
    ) -> sqlx::Result<Vec<Alert>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM alerts
             WHERE clinic_id = $1 AND ($2 IS NULL OR patient_id = $2) AND ($3 IS NULL OR status = $3)
               AND ($4 IS NULL OR indicator = $4) AND ($5 IS NULL OR updated_at >= $5)
               AND ($7 IS NULL OR snoozed_until IS NULL OR snoozed_until <= $7)
             ORDER BY CASE status WHEN 'open' THEN 0 WHEN 'acknowledged' THEN 1 ELSE 2 END,
                      CASE indicator WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                      updated_at DESC, id
             LIMIT $6"
        );
        let rows: Vec<AlertRow> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(filter.patient)
                .bind(&filter.status)
                .bind(&filter.indicator)
                .bind(filter.since)
                .bind(limit)
                .bind(filter.awake_at)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Alert::from).collect())
    }

    /// Moves an alert of a patient to `status` (with who, why and, for a
    /// snooze, until when); `None` if the patient has no such alert.
    pub async fn set_alert_status(
        &self,
        clinic: Uuid,
        patient: Uuid,
        id: Uuid,
        change: (&str, &str, Option<&str>, Option<DateTime<Utc>>),
    ) -> sqlx::Result<Option<Alert>> {
        let (status, by, reason, snoozed_until) = change;
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE alerts SET status = $1, changed_by = $2, reason = $3, snoozed_until = $4, updated_at = $5
                 WHERE clinic_id = $6 AND patient_id = $7 AND id = $8",
            )
            .bind(status)
            .bind(by)
            .bind(reason)
            .bind(snoozed_until)
            .bind(now())
            .bind(clinic)
            .bind(patient)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        self.alert(clinic, patient, id).await
    }

    /// One alert of a patient.
    pub async fn alert(
        &self,
        clinic: Uuid,
        patient: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<Alert>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM alerts WHERE clinic_id = $1 AND patient_id = $2 AND id = $3"
        );
        let row: Option<AlertRow> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(clinic)
                .bind(patient)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(Alert::from))
    }
}
