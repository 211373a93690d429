-- Bearer tokens and the append-only audit log (SQLite).
-- Kept in step with migrations/postgres/0001_tokens_and_audit.sql: same tables, columns and rules.

-- A token is stored only as the SHA-256 of its secret. Revoking sets revoked_at; rows are never deleted,
-- so the audit log can always name who held a token.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids are never reused, as on PostgreSQL
    name         TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role         TEXT    NOT NULL CHECK (role IN ('direktorat', 'fylke', 'forsker')),
    fylke        TEXT    CHECK (fylke IS NULL OR (length(fylke) = 2 AND fylke GLOB '[0-9][0-9]')),
    token_sha256 TEXT    NOT NULL UNIQUE CHECK (length(token_sha256) = 64),
    created_at   TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    revoked_at   TEXT,
    revoked_by   TEXT,
    -- a fylke token is bound to exactly one fylke; other roles to none
    CHECK ((role = 'fylke') = (fylke IS NOT NULL)),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);

-- Names identify tokens in the audit log: unique among active tokens (a revoked name may be reused).
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- Who did what, when, and whether it was permitted. AUTOINCREMENT: ids are never reused.
CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT    NOT NULL,
    request_id     TEXT,
    actor_token_id INTEGER REFERENCES api_tokens (id),
    actor_name     TEXT,
    actor_role     TEXT CHECK (actor_role IS NULL OR actor_role IN ('direktorat', 'fylke', 'forsker')),
    actor_fylke    TEXT,
    method         TEXT    NOT NULL,
    route          TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    trial_id       TEXT,
    object_ids     TEXT    NOT NULL DEFAULT '[]',
    result         TEXT    NOT NULL CHECK (result IN ('permitted', 'denied', 'failed')),
    status         INTEGER NOT NULL,
    detail         TEXT
);

CREATE INDEX audit_log_actor ON audit_log (actor_name, id);
CREATE INDEX audit_log_trial ON audit_log (trial_id, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only: no code path updates or deletes audit rows, and the database refuses it too.
CREATE TRIGGER audit_log_refuse_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_refuse_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
