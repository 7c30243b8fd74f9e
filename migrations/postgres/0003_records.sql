-- Patient memory: structured records, chunks that may come from a record rather
-- than a document, an embedding cache scoped to the patient, retry scheduling for
-- jobs, de-duplication of uploads within a patient, and what each vector table was
-- built with.

-- A structured clinical fact, from a parsed document (document_id set) or posted
-- directly (document_id NULL). Erasing the patient or deleting the document
-- removes it.
CREATE TABLE records (
    id              UUID PRIMARY KEY,
    clinic_id       UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id      UUID NOT NULL,
    document_id     UUID REFERENCES documents (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('observation', 'medication', 'condition', 'allergy', 'encounter', 'note')),
    code_system     TEXT,
    code            TEXT,
    display         TEXT NOT NULL,
    codes           TEXT NOT NULL,
    status          TEXT,
    value_num       DOUBLE PRECISION,
    value_text      TEXT,
    unit            TEXT,
    range_low       DOUBLE PRECISION,
    range_high      DOUBLE PRECISION,
    range_text      TEXT,
    interpretation  TEXT,
    effective       TEXT,
    effective_end   TEXT,
    effective_at    TIMESTAMPTZ,
    details         TEXT NOT NULL,
    source_id       TEXT,
    span_start      BIGINT,
    span_end        BIGINT,
    page            BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE
);
CREATE INDEX records_patient_kind ON records (clinic_id, patient_id, kind, effective_at);
CREATE INDEX records_patient_code ON records (clinic_id, patient_id, code);
CREATE INDEX records_document ON records (document_id);

-- Chunks now come from a document's text, from a record, or both; they carry the
-- record's kind and time so that search can filter on them.
ALTER TABLE chunks ALTER COLUMN document_id DROP NOT NULL;
ALTER TABLE chunks ADD COLUMN record_id UUID REFERENCES records (id) ON DELETE CASCADE;
ALTER TABLE chunks ADD COLUMN kind TEXT NOT NULL DEFAULT 'note';
ALTER TABLE chunks ADD COLUMN effective_at TIMESTAMPTZ;
ALTER TABLE chunks ADD COLUMN page BIGINT;
ALTER TABLE chunks ADD CONSTRAINT chunks_source_check CHECK (document_id IS NOT NULL OR record_id IS NOT NULL);
CREATE INDEX chunks_record ON chunks (record_id);

-- Embeddings already computed for a text of this patient, by model. Scoped to the
-- patient so that erasure takes them along.
CREATE TABLE embeddings (
    clinic_id    UUID NOT NULL,
    patient_id   UUID NOT NULL,
    model        TEXT NOT NULL,
    text_sha256  TEXT NOT NULL,
    vector       BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (clinic_id, patient_id, model, text_sha256),
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE
);

-- Retries: a job re-queued after a transient failure waits until not_before.
ALTER TABLE jobs ADD COLUMN not_before TIMESTAMPTZ;

-- The same bytes uploaded twice for one patient are one document.
CREATE UNIQUE INDEX documents_patient_sha256 ON documents (clinic_id, patient_id, sha256);

-- What each clinic's vector table was built with; a mismatch with the loaded model
-- makes /ready fail until `medmemory reindex` has run.
CREATE TABLE vector_tables (
    clinic_id       UUID PRIMARY KEY REFERENCES clinics (id) ON DELETE CASCADE,
    model           TEXT NOT NULL,
    dimension       BIGINT NOT NULL,
    schema_version  BIGINT NOT NULL,
    built_at        TIMESTAMPTZ NOT NULL
);

-- Patient erasures, durable: the SQL part commits with this row, and the
-- vectors and blobs are removed after; an erasure interrupted by a crash is
-- finished at the next start. No foreign key: the patient is gone, the trace
-- of the erasure is not.
CREATE TABLE erasures (
    id            UUID PRIMARY KEY,
    clinic_id     UUID NOT NULL,
    patient_id    UUID NOT NULL,
    actor         TEXT NOT NULL,
    documents     BIGINT NOT NULL,
    records       BIGINT NOT NULL,
    requested_at  TIMESTAMPTZ NOT NULL,
    completed_at  TIMESTAMPTZ
);
CREATE INDEX erasures_pending ON erasures (completed_at);
