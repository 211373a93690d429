-- Bearer tokens and the append-only audit log (PostgreSQL).
-- Kept in step with migrations/sqlite/0001_tokens_and_audit.sql: same tables, columns and rules.

-- A token is stored only as the SHA-256 of its secret. Revoking sets revoked_at; rows are never deleted,
-- so the audit log can always name who held a token.
CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role         TEXT        NOT NULL CHECK (role IN ('direktorat', 'fylke', 'forsker')),
    fylke        TEXT        CHECK (fylke IS NULL OR fylke ~ '^[0-9]{2}$'),
    token_sha256 TEXT        NOT NULL UNIQUE CHECK (length(token_sha256) = 64),
    created_at   TIMESTAMPTZ NOT NULL,
    created_by   TEXT        NOT NULL,
    revoked_at   TIMESTAMPTZ,
    revoked_by   TEXT,
    -- a fylke token is bound to exactly one fylke; other roles to none
    CHECK ((role = 'fylke') = (fylke IS NOT NULL)),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);

-- Names identify tokens in the audit log: unique among active tokens (a revoked name may be reused).
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- Who did what, when, and whether it was permitted. Identity ids are never reused.
CREATE TABLE audit_log (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             TIMESTAMPTZ NOT NULL,
    request_id     TEXT,
    actor_token_id BIGINT REFERENCES api_tokens (id),
    actor_name     TEXT,
    actor_role     TEXT CHECK (actor_role IS NULL OR actor_role IN ('direktorat', 'fylke', 'forsker')),
    actor_fylke    TEXT,
    method         TEXT    NOT NULL,
    route          TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    trial_id       TEXT,
    object_ids     JSONB   NOT NULL DEFAULT '[]'::jsonb,
    result         TEXT    NOT NULL CHECK (result IN ('permitted', 'denied', 'failed')),
    status         INTEGER NOT NULL,
    detail         TEXT
);

CREATE INDEX audit_log_actor ON audit_log (actor_name, id);
CREATE INDEX audit_log_trial ON audit_log (trial_id, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only: no code path updates or deletes audit rows, and the database refuses it too
-- (row-level UPDATE/DELETE and statement-level TRUNCATE).
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_refuse_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();

CREATE TRIGGER audit_log_refuse_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
