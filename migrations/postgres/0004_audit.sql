-- The audit trail: append-only and hash-chained. Each entry stores the hash of
-- the one before, so an edited, inserted or removed row breaks the chain at that
-- point (`GET /audit/verify`). No foreign keys: erasing a patient or a clinic never
-- takes its trail along. A trigger refuses updates and deletes.
CREATE TABLE audit_events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          UUID NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    clinic_id   UUID,
    patient_id  UUID,
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

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END
$$;

CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
