-- Locked trials and tokens (SQLite). Kept in step with
-- migrations/postgres/0009_locked_trials_and_tokens.sql: same columns, same rules.
--
-- The rules hold for every connection (SQLite has no roles; the triggers are the guard):
-- - a trial's state moves only forward along its lifecycle; its id and creation never change, its
--   current version changes only by a new version while it is registered, and it is never deleted;
-- - a protocol version is never changed or deleted, whatever the trial's state: replacing a draft
--   adds the next revision of the version, and reads take the latest revision;
-- - enrollment uploads, enrollments, draws and assignments are written only while the trial is
--   enrolling (an assignment only for an eligible firm enrolled in its wave), and never changed;
-- - a token's hash, role, fylke, name and creation never change, a revocation is final, and a token
--   is never deleted.

-- Protocol versions: the revision joins the key, which SQLite changes only by rebuilding the table
-- (the column goes last, where PostgreSQL's ALTER TABLE puts it). No table references
-- protocol_versions, so dropping the old table checks no foreign key and fires no trigger; its own
-- triggers go with it, and nothing else names it until the new table has its name.
CREATE TABLE protocol_versions_new (
    trial_id       TEXT    NOT NULL REFERENCES trials (id),
    version        INTEGER NOT NULL,
    content_hash   TEXT    NOT NULL CHECK (length(content_hash) = 64),
    canonical_json TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    created_by     TEXT    NOT NULL,
    revision       INTEGER NOT NULL CHECK (revision >= 1),
    PRIMARY KEY (trial_id, version, revision)
);

INSERT INTO protocol_versions_new (trial_id, version, content_hash, canonical_json, created_at, created_by, revision)
    SELECT trial_id, version, content_hash, canonical_json, created_at, created_by, 1
    FROM protocol_versions;

DROP TABLE protocol_versions;
ALTER TABLE protocol_versions_new RENAME TO protocol_versions;

-- Updates and deletes are refused always (0002 allowed updates while the trial was a draft).
CREATE TRIGGER protocol_versions_refuse_update BEFORE UPDATE ON protocol_versions
BEGIN SELECT RAISE(ABORT, 'protocol versions are immutable'); END;
CREATE TRIGGER protocol_versions_refuse_delete BEFORE DELETE ON protocol_versions
BEGIN SELECT RAISE(ABORT, 'protocol versions are immutable'); END;

-- A version is added only as the service adds one: the next revision of the current version while
-- the trial is a draft, or the first revision of the next version while it is registered.
CREATE TRIGGER protocol_versions_check_insert BEFORE INSERT ON protocol_versions
WHEN NOT EXISTS (
    SELECT 1 FROM trials t
    WHERE t.id = NEW.trial_id
      AND ((t.state = 'draft' AND NEW.version = t.current_version
            AND NEW.revision = 1 + (SELECT COALESCE(MAX(p.revision), 0) FROM protocol_versions p
                                    WHERE p.trial_id = NEW.trial_id AND p.version = NEW.version))
           OR (t.state = 'registered' AND NEW.version = t.current_version + 1 AND NEW.revision = 1)))
BEGIN SELECT RAISE(ABORT, 'protocol versions are immutable: a version is added only as the next revision of a draft or the next version of a registered trial'); END;

-- Trials: created as drafts, never deleted, and changed only as the lifecycle allows.
CREATE TRIGGER trials_check_insert BEFORE INSERT ON trials
WHEN NEW.state IS NOT 'draft'
BEGIN SELECT RAISE(ABORT, 'a trial is created as a draft'); END;

CREATE TRIGGER trials_refuse_delete BEFORE DELETE ON trials
BEGIN SELECT RAISE(ABORT, 'trials are never deleted'); END;

CREATE TRIGGER trials_refuse_identity_change BEFORE UPDATE ON trials
WHEN NEW.id IS NOT OLD.id OR NEW.created_at IS NOT OLD.created_at OR NEW.created_by IS NOT OLD.created_by
BEGIN SELECT RAISE(ABORT, 'a trial''s id, created_at and created_by are immutable'); END;

CREATE TRIGGER trials_state_moves_forward BEFORE UPDATE ON trials
WHEN NEW.state IS NOT OLD.state
 AND (OLD.state || '>' || NEW.state) NOT IN (
     'draft>registered', 'registered>enrolling', 'enrolling>randomized',
     'enrolling>follow_up', 'randomized>enrolling', 'randomized>follow_up',
     'follow_up>closed')
BEGIN SELECT RAISE(ABORT, 'a trial''s state moves only forward along its lifecycle'); END;

CREATE TRIGGER trials_version_moves_while_registered BEFORE UPDATE ON trials
WHEN NEW.current_version IS NOT OLD.current_version
 AND NOT (OLD.state = 'registered' AND NEW.state = 'registered'
          AND NEW.current_version = OLD.current_version + 1
          AND EXISTS (SELECT 1 FROM protocol_versions p
                      WHERE p.trial_id = OLD.id AND p.version = NEW.current_version))
BEGIN SELECT RAISE(ABORT, 'a trial''s current version moves only to a new version while it is registered'); END;

-- Enrollment uploads, enrollments, draws and assignments are written only while the trial is
-- enrolling; an assignment only for an eligible firm enrolled in the assignment's wave.
CREATE TRIGGER enrollment_uploads_check_insert BEFORE INSERT ON enrollment_uploads
WHEN (SELECT state FROM trials WHERE id = NEW.trial_id) IS NOT 'enrolling'
BEGIN SELECT RAISE(ABORT, 'enrollment uploads are immutable: written only while the trial is enrolling'); END;
CREATE TRIGGER enrollments_check_insert BEFORE INSERT ON enrollments
WHEN (SELECT state FROM trials WHERE id = NEW.trial_id) IS NOT 'enrolling'
BEGIN SELECT RAISE(ABORT, 'enrollments are immutable: written only while the trial is enrolling'); END;
CREATE TRIGGER draws_check_insert BEFORE INSERT ON draws
WHEN (SELECT state FROM trials WHERE id = NEW.trial_id) IS NOT 'enrolling'
BEGIN SELECT RAISE(ABORT, 'draws are immutable: written only while the trial is enrolling'); END;
CREATE TRIGGER assignments_check_insert BEFORE INSERT ON assignments
WHEN (SELECT state FROM trials WHERE id = NEW.trial_id) IS NOT 'enrolling'
  OR NOT EXISTS (SELECT 1 FROM enrollments e
                 WHERE e.trial_id = NEW.trial_id AND e.orgnr = NEW.orgnr AND e.wave = NEW.wave
                   AND e.eligible)
BEGIN SELECT RAISE(ABORT, 'assignments are immutable: written only while the trial is enrolling, for an eligible firm of the wave'); END;

-- Tokens: only a revocation changes a token, once.
CREATE TRIGGER api_tokens_refuse_delete BEFORE DELETE ON api_tokens
BEGIN SELECT RAISE(ABORT, 'api_tokens are never deleted: revoke the token'); END;

CREATE TRIGGER api_tokens_refuse_identity_change BEFORE UPDATE ON api_tokens
WHEN NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.role IS NOT OLD.role
  OR NEW.fylke IS NOT OLD.fylke OR NEW.token_sha256 IS NOT OLD.token_sha256
  OR NEW.created_at IS NOT OLD.created_at OR NEW.created_by IS NOT OLD.created_by
BEGIN SELECT RAISE(ABORT, 'a token''s hash, role, fylke, name and creation are immutable'); END;

CREATE TRIGGER api_tokens_revocation_is_final BEFORE UPDATE ON api_tokens
WHEN OLD.revoked_at IS NOT NULL
 AND (NEW.revoked_at IS NOT OLD.revoked_at OR NEW.revoked_by IS NOT OLD.revoked_by)
BEGIN SELECT RAISE(ABORT, 'a token''s revocation is immutable: it cannot be undone or changed'); END;
