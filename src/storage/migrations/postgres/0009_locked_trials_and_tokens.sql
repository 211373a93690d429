-- Locked trials and tokens (PostgreSQL). Kept in step with
-- migrations/sqlite/0009_locked_trials_and_tokens.sql: same columns, same rules.
--
-- The rules hold for every connection, the table owner's included (a trigger refuses, so a missing
-- privilege is not the only guard):
-- - a trial's state moves only forward along its lifecycle; its id and creation never change, its
--   current version changes only by a new version while it is registered, and it is never deleted;
-- - a protocol version is never changed or deleted, whatever the trial's state: replacing a draft
--   adds the next revision of the version, and reads take the latest revision;
-- - enrollment uploads, enrollments, draws and assignments are written only while the trial is
--   enrolling (an assignment only for an eligible firm enrolled in its wave), and never changed;
-- - a token's hash, role, fylke, name and creation never change, a revocation is final, and a token
--   is never deleted.

-- Protocol versions: the revision is part of the key, so replacing a draft is an INSERT.
ALTER TABLE protocol_versions ADD COLUMN revision INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1);
ALTER TABLE protocol_versions ALTER COLUMN revision DROP DEFAULT;
ALTER TABLE protocol_versions DROP CONSTRAINT protocol_versions_pkey;
ALTER TABLE protocol_versions ADD PRIMARY KEY (trial_id, version, revision);

-- Updates and deletes are refused always (0002 allowed updates while the trial was a draft).
DROP TRIGGER protocol_versions_refuse_change ON protocol_versions;
DROP FUNCTION protocol_versions_refuse_change();
CREATE TRIGGER protocol_versions_refuse_change BEFORE UPDATE OR DELETE ON protocol_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- A version is added only as the service adds one: the next revision of the current version while
-- the trial is a draft, or the first revision of the next version while it is registered.
CREATE FUNCTION protocol_versions_check_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    trial_state TEXT;
    current_v   INTEGER;
BEGIN
    SELECT state, current_version INTO trial_state, current_v FROM trials WHERE id = NEW.trial_id;
    IF trial_state = 'draft' AND NEW.version = current_v
       AND NEW.revision = 1 + (SELECT COALESCE(MAX(p.revision), 0) FROM protocol_versions p
                               WHERE p.trial_id = NEW.trial_id AND p.version = NEW.version) THEN
        RETURN NEW;
    END IF;
    IF trial_state = 'registered' AND NEW.version = current_v + 1 AND NEW.revision = 1 THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'protocol versions are immutable: version % revision % cannot be added to a trial that is %',
        NEW.version, NEW.revision, COALESCE(trial_state, 'missing')
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER protocol_versions_check_insert BEFORE INSERT ON protocol_versions
    FOR EACH ROW EXECUTE FUNCTION protocol_versions_check_insert();

-- Trials: created as drafts, never deleted, and changed only as the lifecycle allows.
CREATE FUNCTION trials_check_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'trials are never deleted (DELETE refused)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW.state IS DISTINCT FROM 'draft' THEN
            RAISE EXCEPTION 'a trial is created as a draft, not %', NEW.state
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.created_at IS DISTINCT FROM OLD.created_at
       OR NEW.created_by IS DISTINCT FROM OLD.created_by THEN
        RAISE EXCEPTION 'a trial''s id, created_at and created_by are immutable (UPDATE refused)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.state IS DISTINCT FROM OLD.state
       AND (OLD.state || '>' || NEW.state) NOT IN (
           'draft>registered', 'registered>enrolling', 'enrolling>randomized',
           'enrolling>follow_up', 'randomized>enrolling', 'randomized>follow_up',
           'follow_up>closed') THEN
        RAISE EXCEPTION 'a trial''s state moves only forward along its lifecycle: % to % refused',
            OLD.state, NEW.state
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.current_version IS DISTINCT FROM OLD.current_version
       AND NOT (OLD.state = 'registered' AND NEW.state = 'registered'
                AND NEW.current_version = OLD.current_version + 1
                AND EXISTS (SELECT 1 FROM protocol_versions p
                            WHERE p.trial_id = OLD.id AND p.version = NEW.current_version)) THEN
        RAISE EXCEPTION 'a trial''s current version moves only to a new version while it is registered: % to % refused',
            OLD.current_version, NEW.current_version
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trials_check_change BEFORE INSERT OR UPDATE OR DELETE ON trials
    FOR EACH ROW EXECUTE FUNCTION trials_check_change();
CREATE TRIGGER trials_refuse_truncate BEFORE TRUNCATE ON trials
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Enrollment uploads, enrollments, draws and assignments are written only while the trial is
-- enrolling; an assignment only for an eligible firm enrolled in the assignment's wave.
CREATE FUNCTION check_written_while_enrolling() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT state FROM trials WHERE id = NEW.trial_id) IS DISTINCT FROM 'enrolling' THEN
        RAISE EXCEPTION '% are immutable: written only while the trial is enrolling (INSERT refused)',
            TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Nested, not ANDed: NEW of the other tables has no orgnr to prepare the query with.
    IF TG_TABLE_NAME = 'assignments' THEN
        IF NOT EXISTS (SELECT 1 FROM enrollments e
                       WHERE e.trial_id = NEW.trial_id AND e.orgnr = NEW.orgnr
                         AND e.wave = NEW.wave AND e.eligible) THEN
            RAISE EXCEPTION 'assignments are immutable: % is not an eligible firm of wave % (INSERT refused)',
                NEW.orgnr, NEW.wave
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER enrollment_uploads_check_insert BEFORE INSERT ON enrollment_uploads
    FOR EACH ROW EXECUTE FUNCTION check_written_while_enrolling();
CREATE TRIGGER enrollments_check_insert BEFORE INSERT ON enrollments
    FOR EACH ROW EXECUTE FUNCTION check_written_while_enrolling();
CREATE TRIGGER draws_check_insert BEFORE INSERT ON draws
    FOR EACH ROW EXECUTE FUNCTION check_written_while_enrolling();
CREATE TRIGGER assignments_check_insert BEFORE INSERT ON assignments
    FOR EACH ROW EXECUTE FUNCTION check_written_while_enrolling();

-- Tokens: only a revocation changes a token, once.
CREATE FUNCTION api_tokens_check_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'api_tokens are never deleted: revoke the token (DELETE refused)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.name IS DISTINCT FROM OLD.name
       OR NEW.role IS DISTINCT FROM OLD.role OR NEW.fylke IS DISTINCT FROM OLD.fylke
       OR NEW.token_sha256 IS DISTINCT FROM OLD.token_sha256
       OR NEW.created_at IS DISTINCT FROM OLD.created_at
       OR NEW.created_by IS DISTINCT FROM OLD.created_by THEN
        RAISE EXCEPTION 'a token''s hash, role, fylke, name and creation are immutable (UPDATE refused)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
                                       OR NEW.revoked_by IS DISTINCT FROM OLD.revoked_by) THEN
        RAISE EXCEPTION 'a token''s revocation is immutable: it cannot be undone or changed (UPDATE refused)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER api_tokens_check_change BEFORE UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_tokens_check_change();
CREATE TRIGGER api_tokens_refuse_truncate BEFORE TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
