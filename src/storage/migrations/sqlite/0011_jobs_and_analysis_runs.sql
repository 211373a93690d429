-- Jobs and analysis runs (SQLite). Kept in step with
-- migrations/postgres/0011_jobs_and_analysis_runs.sql.
--
-- A job is one long computation (src/jobs): queued, claimed by one worker under a lease, run,
-- and finished as done, failed or cancelled. A worker that dies loses its claim when the lease
-- (lease_until, milliseconds since the epoch) expires, and another worker runs the job again.

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    kind              TEXT    NOT NULL CHECK (kind IN ('analysis')),
    trial_id          TEXT    REFERENCES trials (id),
    -- What to compute, as the kind reads it (an analysis job: {"run": id}).
    subject           TEXT    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    created_at        TEXT    NOT NULL,
    created_by        TEXT    NOT NULL,
    -- The token that started it (a researcher may cancel only the jobs they started).
    created_by_token  INTEGER,
    started_at        TEXT,
    finished_at       TEXT,
    -- How many times a worker has claimed it (more than one: it was interrupted).
    attempts          INTEGER NOT NULL DEFAULT 0,
    lease_owner       TEXT,
    lease_until       INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    stage             TEXT,
    done              INTEGER NOT NULL DEFAULT 0,
    total             INTEGER NOT NULL DEFAULT 0,
    elapsed_seconds   REAL,
    remaining_seconds REAL,
    -- Why it failed: {"code": ..., "message": ...}.
    error             TEXT
);

CREATE INDEX jobs_claimable ON jobs (state, id);

-- An analysis run: the estimates of one trial under one key (protocol version and hash, statistics
-- vintage, the draws, canonical options and program version). The result, once stored, never
-- changes; a run whose job failed or was cancelled may get a new job.
CREATE TABLE analysis_runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id         TEXT    NOT NULL REFERENCES trials (id),
    -- SHA-256 of the canonical JSON of `key_json`.
    run_key          TEXT    NOT NULL CHECK (length(run_key) = 64),
    key_json         TEXT    NOT NULL,
    protocol_version INTEGER NOT NULL,
    protocol_hash    TEXT    NOT NULL CHECK (length(protocol_hash) = 64),
    vintage          INTEGER,
    options          TEXT    NOT NULL,
    program_version  TEXT    NOT NULL,
    job_id           INTEGER REFERENCES jobs (id),
    created_at       TEXT    NOT NULL,
    created_by       TEXT    NOT NULL,
    -- The result: the canonical JSON of the estimates, and its SHA-256.
    result           TEXT,
    result_sha256    TEXT    CHECK (result_sha256 IS NULL OR length(result_sha256) = 64),
    completed_at     TEXT,
    UNIQUE (trial_id, run_key)
);

CREATE INDEX analysis_runs_trial ON analysis_runs (trial_id, id);

CREATE TRIGGER analysis_runs_refuse_update BEFORE UPDATE ON analysis_runs
WHEN OLD.result IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a completed analysis run is immutable'); END;
CREATE TRIGGER analysis_runs_refuse_delete BEFORE DELETE ON analysis_runs
BEGIN SELECT RAISE(ABORT, 'analysis runs are immutable'); END;
