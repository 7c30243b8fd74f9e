-- CDS Hooks: the EHR clients a clinic trusts, the JWT ids they have used
-- (replay protection across instances), the cards the service handed out and
-- the feedback clinicians gave on them.

-- A CDS client: an issuer and its public keys (a JWK Set given out of band,
-- or an allow-listed `jku` URL). Its casbin subject is `cds-client:<id>`.
CREATE TABLE cds_clients (
    id          UUID PRIMARY KEY,
    clinic_id   UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    jwks        TEXT,
    jku         TEXT,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT cds_clients_issuer_unique UNIQUE (clinic_id, issuer),
    CONSTRAINT cds_clients_keys CHECK ((jwks IS NULL) <> (jku IS NULL))
);

-- Every `jti` a client used, until its token expires: a second use is a replay.
CREATE TABLE cds_jtis (
    client_id   UUID NOT NULL REFERENCES cds_clients (id) ON DELETE CASCADE,
    jti         TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX cds_jtis_expiry ON cds_jtis (expires_at);

-- A card a CDS service call returned; `fingerprint` is the alert's, so
-- feedback shows with the alert it concerns. Erased with the patient.
CREATE TABLE cds_cards (
    id              UUID PRIMARY KEY,
    clinic_id       UUID NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    patient_id      UUID NOT NULL,
    service_id      TEXT NOT NULL,
    rule            TEXT NOT NULL,
    hook_instance   TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    indicator       TEXT NOT NULL,
    summary         TEXT NOT NULL,
    suggestions     TEXT NOT NULL,
    issued_to       TEXT NOT NULL,
    issued_at       TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id) ON DELETE CASCADE
);
CREATE INDEX cds_cards_fingerprint ON cds_cards (clinic_id, patient_id, fingerprint);

-- Feedback on a card (CDS Hooks `feedback`): accepted with the suggestions
-- taken, or overridden with a reason.
CREATE TABLE cds_feedback (
    id                   UUID PRIMARY KEY,
    card_id              UUID NOT NULL REFERENCES cds_cards (id) ON DELETE CASCADE,
    outcome              TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    accepted_suggestions TEXT NOT NULL,
    override_reason      TEXT,
    user_comment         TEXT,
    outcome_at           TIMESTAMPTZ NOT NULL,
    given_by             TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX cds_feedback_card ON cds_feedback (card_id);
