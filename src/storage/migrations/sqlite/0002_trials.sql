-- Trials, protocol versions, enrollment, draws and assignments (SQLite).
-- Kept in step with migrations/postgres/0002_trials.sql.

-- A trial and where it is in its lifecycle:
-- draft -> registered -> enrolling -> randomized -> follow_up -> closed
-- (randomized -> enrolling again when the protocol commits a seed for another wave).
CREATE TABLE trials (
    id              TEXT    PRIMARY KEY,
    state           TEXT    NOT NULL CHECK (state IN ('draft', 'registered', 'enrolling', 'randomized', 'follow_up', 'closed')),
    current_version INTEGER NOT NULL,
    created_at      TEXT    NOT NULL,
    created_by      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);

-- Every version of a trial's protocol. A draft version may be replaced; from registration on, its
-- content hash is fixed and a change is a new version.
CREATE TABLE protocol_versions (
    trial_id       TEXT    NOT NULL REFERENCES trials (id),
    version        INTEGER NOT NULL,
    content_hash   TEXT    NOT NULL CHECK (length(content_hash) = 64),
    canonical_json TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    created_by     TEXT    NOT NULL,
    PRIMARY KEY (trial_id, version)
);

-- One accepted enrollment upload.
CREATE TABLE enrollment_uploads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id    TEXT    NOT NULL REFERENCES trials (id),
    wave        INTEGER NOT NULL CHECK (wave >= 1),
    sha256      TEXT    NOT NULL,
    firms       INTEGER NOT NULL,
    eligible    INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    created_by  TEXT    NOT NULL
);

-- Enrolled firms with the facts eligibility and strata used, and the verdict.
CREATE TABLE enrollments (
    trial_id         TEXT    NOT NULL REFERENCES trials (id),
    orgnr            TEXT    NOT NULL CHECK (length(orgnr) = 9),
    wave             INTEGER NOT NULL CHECK (wave >= 1),
    upload_id        INTEGER NOT NULL REFERENCES enrollment_uploads (id),
    navn             TEXT,
    fylke            TEXT    NOT NULL CHECK (length(fylke) = 2),
    kommunenummer    TEXT,
    naeringskode     TEXT    NOT NULL,
    bransje          TEXT    NOT NULL,
    sektor           TEXT    NOT NULL,
    antall_ansatte   INTEGER NOT NULL CHECK (antall_ansatte >= 0),
    overordnet_enhet TEXT,
    villig          INTEGER,
    baseline_tapte   REAL,
    baseline_mulige  REAL,
    covariates       TEXT    NOT NULL DEFAULT '{}',
    eligible         INTEGER NOT NULL,
    exclusions       TEXT    NOT NULL DEFAULT '[]',
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
    baseline_cuts TEXT    NOT NULL DEFAULT '[]',
    units_sha256  TEXT    NOT NULL,
    drawn_at      TEXT    NOT NULL,
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
    sannsynlighet REAL    NOT NULL,
    probabilities TEXT    NOT NULL,
    PRIMARY KEY (trial_id, orgnr),
    FOREIGN KEY (trial_id, orgnr) REFERENCES enrollments (trial_id, orgnr),
    FOREIGN KEY (trial_id, wave) REFERENCES draws (trial_id, wave)
);

CREATE INDEX assignments_fylke ON assignments (trial_id, fylke, orgnr);

-- Nothing accepted is changed or removed: enrollments, uploads, draws and assignments are
-- immutable, and a protocol version may change only while its trial is a draft.
CREATE TRIGGER assignments_refuse_update BEFORE UPDATE ON assignments
BEGIN SELECT RAISE(ABORT, 'assignments are immutable'); END;
CREATE TRIGGER assignments_refuse_delete BEFORE DELETE ON assignments
BEGIN SELECT RAISE(ABORT, 'assignments are immutable'); END;
CREATE TRIGGER draws_refuse_update BEFORE UPDATE ON draws
BEGIN SELECT RAISE(ABORT, 'draws are immutable'); END;
CREATE TRIGGER draws_refuse_delete BEFORE DELETE ON draws
BEGIN SELECT RAISE(ABORT, 'draws are immutable'); END;
CREATE TRIGGER enrollments_refuse_update BEFORE UPDATE ON enrollments
BEGIN SELECT RAISE(ABORT, 'enrollments are immutable'); END;
CREATE TRIGGER enrollments_refuse_delete BEFORE DELETE ON enrollments
BEGIN SELECT RAISE(ABORT, 'enrollments are immutable'); END;
CREATE TRIGGER enrollment_uploads_refuse_update BEFORE UPDATE ON enrollment_uploads
BEGIN SELECT RAISE(ABORT, 'enrollment uploads are immutable'); END;
CREATE TRIGGER enrollment_uploads_refuse_delete BEFORE DELETE ON enrollment_uploads
BEGIN SELECT RAISE(ABORT, 'enrollment uploads are immutable'); END;
CREATE TRIGGER protocol_versions_refuse_update BEFORE UPDATE ON protocol_versions
WHEN (SELECT state FROM trials WHERE id = OLD.trial_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'a registered protocol version is immutable'); END;
CREATE TRIGGER protocol_versions_refuse_delete BEFORE DELETE ON protocol_versions
BEGIN SELECT RAISE(ABORT, 'protocol versions are immutable'); END;

-- A fylke's acknowledgement that it received its firms' assignments of a wave.
CREATE TABLE acknowledgements (
    trial_id        TEXT    NOT NULL REFERENCES trials (id),
    wave            INTEGER NOT NULL,
    fylke           TEXT    NOT NULL,
    firms           INTEGER NOT NULL,
    acknowledged_at TEXT    NOT NULL,
    acknowledged_by TEXT    NOT NULL,
    PRIMARY KEY (trial_id, wave, fylke)
);

CREATE TRIGGER acknowledgements_refuse_update BEFORE UPDATE ON acknowledgements
BEGIN SELECT RAISE(ABORT, 'acknowledgements are immutable'); END;
CREATE TRIGGER acknowledgements_refuse_delete BEFORE DELETE ON acknowledgements
BEGIN SELECT RAISE(ABORT, 'acknowledgements are immutable'); END;
