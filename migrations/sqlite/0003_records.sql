-- Patient memory: structured records, chunks that may come from a record rather
-- than a document, an embedding cache scoped to the patient, retry scheduling for
-- jobs, de-duplication of uploads within a patient, and what each vector table was
-- built with.

-- A structured clinical fact, from a parsed document (document_id set) or posted
-- directly (document_id NULL). Erasing the patient or deleting the document
-- removes it.
CREATE TABLE records (
    id              BLOB PRIMARY KEY NOT NULL,
    clinic_id       BLOB NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id      BLOB NOT NULL,
    document_id     BLOB REFERENCES documents (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('observation', 'medication', 'condition', 'allergy', 'encounter', 'note')),
    code_system     TEXT,
    code            TEXT,
    display         TEXT NOT NULL,
    codes           TEXT NOT NULL,
    status          TEXT,
    value_num       REAL,
    value_text      TEXT,
    unit            TEXT,
    range_low       REAL,
    range_high      REAL,
    range_text      TEXT,
    interpretation  TEXT,
    effective       TEXT,
    effective_end   TEXT,
    effective_at    TEXT,
    details         TEXT NOT NULL,
    source_id       TEXT,
    span_start      INTEGER,
    span_end        INTEGER,
    page            INTEGER,
    created_at      TEXT NOT NULL,
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE
);
CREATE INDEX records_patient_kind ON records (clinic_id, patient_id, kind, effective_at);
CREATE INDEX records_patient_code ON records (clinic_id, patient_id, code);
CREATE INDEX records_document ON records (document_id);

-- Chunks now come from a document's text, from a record, or both; they carry the
-- record's kind and time so that search can filter on them.
CREATE TABLE chunks_v2 (
    id           BLOB PRIMARY KEY NOT NULL,
    clinic_id    BLOB NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id   BLOB NOT NULL,
    document_id  BLOB REFERENCES documents (id) ON DELETE CASCADE,
    record_id    BLOB REFERENCES records (id) ON DELETE CASCADE,
    ordinal      INTEGER NOT NULL,
    section      TEXT,
    kind         TEXT NOT NULL DEFAULT 'note',
    effective_at TEXT,
    text         TEXT NOT NULL,
    span_start   INTEGER NOT NULL,
    span_end     INTEGER NOT NULL,
    page         INTEGER,
    created_at   TEXT NOT NULL,
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE,
    CHECK (document_id IS NOT NULL OR record_id IS NOT NULL)
);
INSERT INTO chunks_v2 (id, clinic_id, patient_id, document_id, ordinal, section, text, span_start, span_end, created_at)
    SELECT id, clinic_id, patient_id, document_id, ordinal, section, text, span_start, span_end, created_at FROM chunks;
DROP TABLE chunks;
ALTER TABLE chunks_v2 RENAME TO chunks;
CREATE UNIQUE INDEX chunks_document_ordinal_unique ON chunks (document_id, ordinal) WHERE document_id IS NOT NULL;
CREATE INDEX chunks_patient ON chunks (clinic_id, patient_id);
CREATE INDEX chunks_record ON chunks (record_id);

-- Embeddings already computed for a text of this patient, by model. Scoped to the
-- patient so that erasure takes them along.
CREATE TABLE embeddings (
    clinic_id    BLOB NOT NULL,
    patient_id   BLOB NOT NULL,
    model        TEXT NOT NULL,
    text_sha256  TEXT NOT NULL,
    vector       BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (clinic_id, patient_id, model, text_sha256),
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE
);

-- Retries: a job re-queued after a transient failure waits until not_before.
ALTER TABLE jobs ADD COLUMN not_before TEXT;

-- The same bytes uploaded twice for one patient are one document.
CREATE UNIQUE INDEX documents_patient_sha256 ON documents (clinic_id, patient_id, sha256);

-- What each clinic's vector table was built with; a mismatch with the loaded model
-- makes /ready fail until `medmemory reindex` has run.
CREATE TABLE vector_tables (
    clinic_id       BLOB PRIMARY KEY NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    model           TEXT NOT NULL,
    dimension       INTEGER NOT NULL,
    schema_version  INTEGER NOT NULL,
    built_at        TEXT NOT NULL
);

-- Patient erasures, durable: the SQL part commits with this row, and the
-- vectors and blobs are removed after; an erasure interrupted by a crash is
-- finished at the next start. No foreign key: the patient is gone, the trace
-- of the erasure is not.
CREATE TABLE erasures (
    id            BLOB PRIMARY KEY NOT NULL,
    clinic_id     BLOB NOT NULL,
    patient_id    BLOB NOT NULL,
    actor         TEXT NOT NULL,
    documents     INTEGER NOT NULL,
    records       INTEGER NOT NULL,
    requested_at  TEXT NOT NULL,
    completed_at  TEXT
);
CREATE INDEX erasures_pending ON erasures (completed_at);
