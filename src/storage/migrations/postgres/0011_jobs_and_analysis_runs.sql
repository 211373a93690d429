-- Jobs and analysis runs (PostgreSQL). Kept in step with
-- migrations/sqlite/0011_jobs_and_analysis_runs.sql.
--
-- A job is one long computation (src/jobs): queued, claimed by one worker under a lease (claims
-- use FOR UPDATE SKIP LOCKED, so service instances sharing the database never take the same job),
-- run, and finished as done, failed or cancelled. A worker that dies loses its claim when the
-- lease (lease_until, milliseconds since the epoch) expires, and another worker runs it again.

CREATE TABLE jobs (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              TEXT        NOT NULL CHECK (kind IN ('analysis')),
    trial_id          TEXT        REFERENCES trials (id),
    -- What to compute, as the kind reads it (an analysis job: {"run": id}).
    subject           TEXT        NOT NULL,
    state             TEXT        NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    created_at        TIMESTAMPTZ NOT NULL,
    created_by        TEXT        NOT NULL,
    -- The token that started it (a researcher may cancel only the jobs they started).
    created_by_token  BIGINT,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    -- How many times a worker has claimed it (more than one: it was interrupted).
    attempts          INTEGER     NOT NULL DEFAULT 0,
    lease_owner       TEXT,
    lease_until       BIGINT,
    cancel_requested  INTEGER     NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    stage             TEXT,
    done              BIGINT      NOT NULL DEFAULT 0,
    total             BIGINT      NOT NULL DEFAULT 0,
    elapsed_seconds   DOUBLE PRECISION,
    remaining_seconds DOUBLE PRECISION,
    -- Why it failed: {"code": ..., "message": ...}.
    error             TEXT
);

CREATE INDEX jobs_claimable ON jobs (state, id);

-- An analysis run: the estimates of one trial under one key (protocol version and hash, statistics
-- vintage, the draws, canonical options and program version). The result, once stored, never
-- changes; a run whose job failed or was cancelled may get a new job.
CREATE TABLE analysis_runs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trial_id         TEXT        NOT NULL REFERENCES trials (id),
    -- SHA-256 of the canonical JSON of `key_json`.
    run_key          TEXT        NOT NULL CHECK (length(run_key) = 64),
    key_json         TEXT        NOT NULL,
    protocol_version INTEGER     NOT NULL,
    protocol_hash    TEXT        NOT NULL CHECK (length(protocol_hash) = 64),
    vintage          BIGINT,
    options          TEXT        NOT NULL,
    program_version  TEXT        NOT NULL,
    job_id           BIGINT      REFERENCES jobs (id),
    created_at       TIMESTAMPTZ NOT NULL,
    created_by       TEXT        NOT NULL,
    -- The result: the canonical JSON of the estimates, and its SHA-256.
    result           TEXT,
    result_sha256    TEXT        CHECK (result_sha256 IS NULL OR length(result_sha256) = 64),
    completed_at     TIMESTAMPTZ,
    UNIQUE (trial_id, run_key)
);

CREATE INDEX analysis_runs_trial ON analysis_runs (trial_id, id);

CREATE FUNCTION analysis_runs_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.result IS NULL THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'a completed analysis run is immutable (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER analysis_runs_refuse_change BEFORE UPDATE OR DELETE ON analysis_runs
    FOR EACH ROW EXECUTE FUNCTION analysis_runs_refuse_change();
CREATE TRIGGER analysis_runs_refuse_truncate BEFORE TRUNCATE ON analysis_runs
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
