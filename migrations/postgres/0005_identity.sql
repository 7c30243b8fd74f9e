-- People who sign in through the clinic's identity provider: one row per
-- (issuer, subject). A first-seen user holds no role until an admin grants one
-- (casbin subject `user:<id>`).
CREATE TABLE users (
    id            UUID PRIMARY KEY NOT NULL,
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_issuer_subject_unique UNIQUE (issuer, subject)
);

-- Custom roles a clinic defines from the fixed vocabulary of resources and
-- actions: casbin `p, role, resource, action` lines scoped to one clinic (the
-- shipped templates stay in role_permissions).
CREATE TABLE clinic_role_permissions (
    clinic_id  UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    resource   TEXT NOT NULL,
    action     TEXT NOT NULL,
    PRIMARY KEY (clinic_id, role, resource, action)
);

-- One counter bumped by every policy change, in the same transaction; every
-- server instance polls it and reloads its enforcer when it moves.
CREATE TABLE policy_version (
    id       INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO policy_version (id, version) VALUES (1, 0);
