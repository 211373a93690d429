-- Page sessions (PostgreSQL). Kept in step with migrations/sqlite/0012_sessions.sql.
--
-- A person signs in to the pages with an API token through a form (src/pages); the session
-- cookie holds 32 random bytes, and this table only their SHA-256. A session acts as its token:
-- revoking the token ends it. Signing out sets ended_at; rows are never deleted, so the audit log
-- can always name the session's token.
CREATE TABLE sessions (
    id_sha256   TEXT        PRIMARY KEY CHECK (length(id_sha256) = 64),
    token_id    BIGINT      NOT NULL REFERENCES api_tokens (id),
    -- every form of the session carries it (CSRF)
    csrf_token  TEXT        NOT NULL CHECK (length(csrf_token) = 64),
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    ended_at    TIMESTAMPTZ
);

CREATE INDEX sessions_token ON sessions (token_id);
