-- The plugin registry: installed components, per-clinic enablement, settings and
-- limits, and the audit of every plugin call.

-- An installed component. The id is the SHA-256 of its bytes; the bytes live in
-- the content-addressed blob store under the same hash.
CREATE TABLE plugins (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('parser', 'clinical-rule', 'retriever')),
    description   TEXT NOT NULL,
    media_types   TEXT NOT NULL,
    wit_version   TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    first_party   INTEGER NOT NULL,
    installed_at  TEXT NOT NULL,
    retired_at    TEXT
);
CREATE INDEX plugins_name ON plugins (name);

-- A clinic's choice about one plugin. No row: first-party plugins are enabled,
-- others are not.
CREATE TABLE clinic_plugins (
    clinic_id   BLOB NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    plugin_id   TEXT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    enabled     INTEGER NOT NULL,
    config      TEXT NOT NULL,
    limits      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (clinic_id, plugin_id)
);

-- Every plugin call, append-only. Patient ids are kept without a foreign key so
-- that erasing a patient never erases the trail; clinics and plugins cannot be
-- deleted while calls reference them.
CREATE TABLE plugin_calls (
    id                 BLOB PRIMARY KEY NOT NULL,
    plugin_id          TEXT NOT NULL REFERENCES plugins (id) ON DELETE RESTRICT,
    clinic_id          BLOB REFERENCES clinics (id) ON DELETE RESTRICT,
    patient_id         BLOB,
    operation          TEXT NOT NULL,
    input_sha256       TEXT NOT NULL,
    output_sha256      TEXT,
    fuel               INTEGER NOT NULL,
    duration_us        INTEGER NOT NULL,
    peak_memory_bytes  INTEGER NOT NULL,
    outcome            TEXT NOT NULL,
    request_id         TEXT,
    created_at         TEXT NOT NULL
);
CREATE INDEX plugin_calls_plugin ON plugin_calls (plugin_id, created_at);
CREATE INDEX plugin_calls_clinic ON plugin_calls (clinic_id, created_at);
