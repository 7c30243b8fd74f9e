-- The skeleton schema: clinics, patients, documents, jobs, chunks, tokens, RBAC.

CREATE TABLE clinics (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT clinics_name_unique UNIQUE (name)
);

CREATE TABLE patients (
    id           UUID PRIMARY KEY,
    clinic_id    UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    given_name   TEXT NOT NULL,
    family_name  TEXT NOT NULL,
    birth_date   DATE NOT NULL,
    sex          TEXT NOT NULL CHECK (sex IN ('female', 'male', 'other', 'unknown')),
    mrn          TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    deleted_at   TIMESTAMPTZ,
    CONSTRAINT patients_clinic_id_unique UNIQUE (clinic_id, id),
    CONSTRAINT patients_mrn_unique UNIQUE (clinic_id, mrn)
);
CREATE INDEX patients_clinic_family ON patients (clinic_id, family_name);

CREATE TABLE documents (
    id                   UUID PRIMARY KEY,
    clinic_id            UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id           UUID NOT NULL,
    media_type           TEXT NOT NULL,
    declared_media_type  TEXT,
    size_bytes           BIGINT NOT NULL,
    sha256               TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE
);
CREATE INDEX documents_patient ON documents (clinic_id, patient_id);

CREATE TABLE jobs (
    id           UUID PRIMARY KEY,
    clinic_id    UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    document_id  UUID NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    progress     DOUBLE PRECISION NOT NULL DEFAULT 0,
    error_code   TEXT,
    error_detail TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_status ON jobs (status, created_at);

CREATE TABLE chunks (
    id           UUID PRIMARY KEY,
    clinic_id    UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id   UUID NOT NULL,
    document_id  UUID NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal      BIGINT NOT NULL,
    section      TEXT,
    text         TEXT NOT NULL,
    span_start   BIGINT NOT NULL,
    span_end     BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE,
    CONSTRAINT chunks_document_ordinal_unique UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_patient ON chunks (clinic_id, patient_id);

CREATE TABLE api_tokens (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    clinic_id     UUID REFERENCES clinics (id) ON DELETE CASCADE,
    role          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
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
    clinic_id   UUID REFERENCES clinics (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subject, role, domain)
);
CREATE INDEX role_assignments_clinic ON role_assignments (clinic_id);
