-- The audit trail: append-only and hash-chained. Each entry stores the hash of
-- the one before, so an edited, inserted or removed row breaks the chain at that
-- point (`GET /audit/verify`). No foreign keys: erasing a patient or a clinic never
-- takes its trail along. Triggers refuse updates and deletes.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          BLOB NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    clinic_id   BLOB,
    patient_id  BLOB,
    resource    TEXT NOT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    request_id  TEXT,
    detail      TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    CONSTRAINT audit_events_id_unique UNIQUE (id)
);
CREATE INDEX audit_events_clinic ON audit_events (clinic_id, seq);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
