-- Conversations with a patient's memory: each question, the answer the host
-- let through, its citations (chunk ids, as JSON) and usage. Erased with the
-- patient (cascade); answers are PHI like the records they cite.
CREATE TABLE conversations (
    id          UUID PRIMARY KEY,
    clinic_id   UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id  UUID NOT NULL,
    started_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE,
    CONSTRAINT conversations_clinic_id_unique UNIQUE (clinic_id, id)
);
CREATE INDEX conversations_patient ON conversations (clinic_id, patient_id, updated_at);

CREATE TABLE messages (
    id                 UUID PRIMARY KEY,
    clinic_id          UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    conversation_id    UUID NOT NULL,
    ordinal            BIGINT NOT NULL,
    asked_by           TEXT NOT NULL,
    question           TEXT NOT NULL,
    answer             TEXT NOT NULL,
    refused            BOOLEAN NOT NULL,
    outcome            TEXT NOT NULL,
    citations          TEXT NOT NULL,
    model              TEXT NOT NULL,
    retriever          TEXT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    rating             BIGINT,
    feedback_comment   TEXT,
    feedback_by        TEXT,
    feedback_at        TIMESTAMPTZ,
    FOREIGN KEY (clinic_id, conversation_id) REFERENCES conversations (clinic_id, id) ON DELETE CASCADE,
    CONSTRAINT messages_conversation_ordinal_unique UNIQUE (conversation_id, ordinal)
);
-- Token quotas sum a clinic's recent usage.
CREATE INDEX messages_clinic_created ON messages (clinic_id, created_at);
