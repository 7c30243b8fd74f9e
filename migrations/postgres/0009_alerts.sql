-- Alerts: what the clinic's rule plugins raised for a patient when records
-- arrived. One row per rule and evidence (the fingerprint); its lifecycle is
-- open -> acknowledged -> resolved, or overridden with a reason; resolved by
-- the host when a later run no longer raises it. Erased with the patient.
CREATE TABLE alerts (
    id              UUID PRIMARY KEY,
    clinic_id       UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id      UUID NOT NULL,
    rule            TEXT NOT NULL,
    plugin_id       TEXT NOT NULL,
    plugin_version  TEXT NOT NULL,
    service_id      TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    indicator       TEXT NOT NULL CHECK (indicator IN ('info', 'warning', 'critical')),
    summary         TEXT NOT NULL,
    detail          TEXT,
    source_label    TEXT NOT NULL,
    evidence        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved', 'overridden')),
    snoozed_until   TIMESTAMPTZ,
    reason          TEXT,
    changed_by      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE,
    CONSTRAINT alerts_fingerprint_unique UNIQUE (clinic_id, patient_id, fingerprint)
);
CREATE INDEX alerts_clinic_status ON alerts (clinic_id, status, indicator);
