-- The skeleton schema: clinics, patients, documents, jobs, chunks, tokens, RBAC.

CREATE TABLE clinics (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    CONSTRAINT clinics_name_unique UNIQUE (name)
);

CREATE TABLE patients (
    id           BLOB PRIMARY KEY NOT NULL,
    clinic_id    BLOB NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    given_name   TEXT NOT NULL,
    family_name  TEXT NOT NULL,
    birth_date   TEXT NOT NULL,
    sex          TEXT NOT NULL CHECK (sex IN ('female', 'male', 'other', 'unknown')),
    mrn          TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    deleted_at   TEXT,
    CONSTRAINT patients_clinic_id_unique UNIQUE (clinic_id, id),
    CONSTRAINT patients_mrn_unique UNIQUE (clinic_id, mrn)
);
CREATE INDEX patients_clinic_family ON patients (clinic_id, family_name);

CREATE TABLE documents (
    id                   BLOB PRIMARY KEY NOT NULL,
    clinic_id            BLOB NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id           BLOB NOT NULL,
    media_type           TEXT NOT NULL,
    declared_media_type  TEXT,
    size_bytes           INTEGER NOT NULL,
    sha256               TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE
);
CREATE INDEX documents_patient ON documents (clinic_id, patient_id);

CREATE TABLE jobs (
    id           BLOB PRIMARY KEY NOT NULL,
    clinic_id    BLOB NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    document_id  BLOB NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    progress     REAL NOT NULL DEFAULT 0,
    error_code   TEXT,
    error_detail TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX jobs_status ON jobs (status, created_at);

CREATE TABLE chunks (
    id           BLOB PRIMARY KEY NOT NULL,
    clinic_id    BLOB NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id   BLOB NOT NULL,
    document_id  BLOB NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal      INTEGER NOT NULL,
    section      TEXT,
    text         TEXT NOT NULL,
    span_start   INTEGER NOT NULL,
    span_end     INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE,
    CONSTRAINT chunks_document_ordinal_unique UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_patient ON chunks (clinic_id, patient_id);

CREATE TABLE api_tokens (
    id            BLOB PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    clinic_id     BLOB REFERENCES clinics (id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    last_used_at  TEXT,
    revoked_at    TEXT,
    CONSTRAINT api_tokens_secret_hash_unique UNIQUE (secret_hash)
);

-- What each role may do: casbin `p, role, resource, action` lines.
CREATE TABLE role_permissions (
    role      TEXT NOT NULL,
    resource  TEXT NOT NULL,
    action    TEXT NOT NULL,
    PRIMARY KEY (role, resource, action)
);

-- Who holds which role where: casbin `g, subject, role, domain` lines. The domain is
-- a clinic id, or `platform` for platform-wide roles (clinic_id NULL).
CREATE TABLE role_assignments (
    subject     TEXT NOT NULL,
    role        TEXT NOT NULL,
    domain      TEXT NOT NULL,
    clinic_id   BLOB REFERENCES clinics (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (subject, role, domain)
);
CREATE INDEX role_assignments_clinic ON role_assignments (clinic_id);
