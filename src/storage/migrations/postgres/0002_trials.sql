-- Trials, protocol versions, enrollment, draws and assignments (PostgreSQL).
-- Kept in step with migrations/sqlite/0002_trials.sql.

-- A trial and where it is in its lifecycle:
-- draft -> registered -> enrolling -> randomized -> follow_up -> closed
-- (randomized -> enrolling again when the protocol commits a seed for another wave).
CREATE TABLE trials (
    id              TEXT    PRIMARY KEY,
    state           TEXT    NOT NULL CHECK (state IN ('draft', 'registered', 'enrolling', 'randomized', 'follow_up', 'closed')),
    current_version INTEGER NOT NULL,
    created_at      TIMESTAMPTZ    NOT NULL,
    created_by      TEXT    NOT NULL,
    updated_at      TIMESTAMPTZ    NOT NULL
);

-- Every version of a trial's protocol. A draft version may be replaced; from registration on, its
-- content hash is fixed and a change is a new version.
CREATE TABLE protocol_versions (
    trial_id       TEXT    NOT NULL REFERENCES trials (id),
    version        INTEGER NOT NULL,
    content_hash   TEXT    NOT NULL CHECK (length(content_hash) = 64),
    canonical_json TEXT    NOT NULL,
    created_at     TIMESTAMPTZ    NOT NULL,
    created_by     TEXT    NOT NULL,
    PRIMARY KEY (trial_id, version)
);

-- One accepted enrollment upload.
CREATE TABLE enrollment_uploads (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trial_id    TEXT    NOT NULL REFERENCES trials (id),
    wave        INTEGER NOT NULL CHECK (wave >= 1),
    sha256      TEXT    NOT NULL,
    firms       INTEGER NOT NULL,
    eligible    INTEGER NOT NULL,
    created_at  TIMESTAMPTZ    NOT NULL,
    created_by  TEXT    NOT NULL
);

-- Enrolled firms with the facts eligibility and strata used, and the verdict.
CREATE TABLE enrollments (
    trial_id         TEXT    NOT NULL REFERENCES trials (id),
    orgnr            TEXT    NOT NULL CHECK (length(orgnr) = 9),
    wave             INTEGER NOT NULL CHECK (wave >= 1),
    upload_id        BIGINT NOT NULL REFERENCES enrollment_uploads (id),
    navn             TEXT,
    fylke            TEXT    NOT NULL CHECK (length(fylke) = 2),
    kommunenummer    TEXT,
    naeringskode     TEXT    NOT NULL,
    bransje          TEXT    NOT NULL,
    sektor           TEXT    NOT NULL,
    antall_ansatte   INTEGER NOT NULL CHECK (antall_ansatte >= 0),
    overordnet_enhet TEXT,
    villig           BOOLEAN,
    baseline_tapte   DOUBLE PRECISION,
    baseline_mulige  DOUBLE PRECISION,
    covariates       JSONB   NOT NULL DEFAULT '{}'::jsonb,
    eligible         BOOLEAN NOT NULL,
    exclusions       JSONB   NOT NULL DEFAULT '[]'::jsonb,
    klynge           TEXT,
    PRIMARY KEY (trial_id, orgnr)
);

CREATE INDEX enrollments_wave ON enrollments (trial_id, wave);

-- One draw per trial and wave.
CREATE TABLE draws (
    trial_id      TEXT    NOT NULL REFERENCES trials (id),
    wave          INTEGER NOT NULL CHECK (wave >= 1),
    protocol_version INTEGER NOT NULL,
    protocol_hash TEXT    NOT NULL,
    algorithm     TEXT    NOT NULL,
    seed          TEXT    NOT NULL,
    baseline_cuts JSONB   NOT NULL DEFAULT '[]'::jsonb,
    units_sha256  TEXT    NOT NULL,
    drawn_at      TIMESTAMPTZ    NOT NULL,
    drawn_by      TEXT    NOT NULL,
    PRIMARY KEY (trial_id, wave)
);

-- Each randomized firm's arm, with every arm's probability.
CREATE TABLE assignments (
    trial_id      TEXT    NOT NULL REFERENCES trials (id),
    orgnr         TEXT    NOT NULL,
    wave          INTEGER NOT NULL,
    fylke         TEXT    NOT NULL,
    arm           TEXT    NOT NULL,
    stratum       TEXT    NOT NULL,
    klynge        TEXT,
    sannsynlighet DOUBLE PRECISION    NOT NULL,
    probabilities JSONB   NOT NULL,
    PRIMARY KEY (trial_id, orgnr),
    FOREIGN KEY (trial_id, orgnr) REFERENCES enrollments (trial_id, orgnr),
    FOREIGN KEY (trial_id, wave) REFERENCES draws (trial_id, wave)
);

CREATE INDEX assignments_fylke ON assignments (trial_id, fylke, orgnr);

-- A fylke's acknowledgement that it received its firms' assignments of a wave.
CREATE TABLE acknowledgements (
    trial_id        TEXT    NOT NULL REFERENCES trials (id),
    wave            INTEGER NOT NULL,
    fylke           TEXT    NOT NULL,
    firms           INTEGER NOT NULL,
    acknowledged_at TIMESTAMPTZ    NOT NULL,
    acknowledged_by TEXT    NOT NULL,
    PRIMARY KEY (trial_id, wave, fylke)
);

-- Nothing accepted is changed or removed: enrollments, uploads, draws, assignments and
-- acknowledgements are immutable (rows and TRUNCATE), and a protocol version may change only while
-- its trial is a draft.
CREATE FUNCTION refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are immutable (% refused)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE FUNCTION protocol_versions_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (SELECT state FROM trials WHERE id = OLD.trial_id) = 'draft' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a registered protocol version is immutable (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER assignments_refuse_change BEFORE UPDATE OR DELETE ON assignments
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER assignments_refuse_truncate BEFORE TRUNCATE ON assignments
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER draws_refuse_change BEFORE UPDATE OR DELETE ON draws
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER draws_refuse_truncate BEFORE TRUNCATE ON draws
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER enrollments_refuse_change BEFORE UPDATE OR DELETE ON enrollments
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER enrollments_refuse_truncate BEFORE TRUNCATE ON enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER enrollment_uploads_refuse_change BEFORE UPDATE OR DELETE ON enrollment_uploads
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER enrollment_uploads_refuse_truncate BEFORE TRUNCATE ON enrollment_uploads
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER acknowledgements_refuse_change BEFORE UPDATE OR DELETE ON acknowledgements
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER acknowledgements_refuse_truncate BEFORE TRUNCATE ON acknowledgements
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER protocol_versions_refuse_change BEFORE UPDATE OR DELETE ON protocol_versions
    FOR EACH ROW EXECUTE FUNCTION protocol_versions_refuse_change();
CREATE TRIGGER protocol_versions_refuse_truncate BEFORE TRUNCATE ON protocol_versions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
