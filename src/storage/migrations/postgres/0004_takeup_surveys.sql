-- What was delivered (take-up events after Fia's statuses) and work-environment survey results
-- (PostgreSQL). Kept in step with migrations/sqlite/0004_takeup_surveys.sql.

CREATE TABLE takeup_events (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trial_id           TEXT             NOT NULL REFERENCES trials (id),
    orgnr              TEXT             NOT NULL CHECK (length(orgnr) = 9),
    fylke              TEXT             NOT NULL,
    status             TEXT             NOT NULL CHECK (status IN ('KONTAKTET', 'TAKKET_NEI', 'AKTIV', 'FULLFØRT', 'AVBRUTT')),
    dato               DATE             NOT NULL,
    arbeidsform_levert TEXT,
    timer              DOUBLE PRECISION CHECK (timer IS NULL OR timer >= 0),
    merknad            TEXT,
    upload_row         INTEGER          NOT NULL,
    created_at         TIMESTAMPTZ      NOT NULL,
    created_by         TEXT             NOT NULL,
    FOREIGN KEY (trial_id, orgnr) REFERENCES assignments (trial_id, orgnr)
);

CREATE INDEX takeup_events_firm ON takeup_events (trial_id, orgnr, dato, id);

CREATE TABLE survey_results (
    trial_id    TEXT             NOT NULL REFERENCES trials (id),
    orgnr       TEXT             NOT NULL CHECK (length(orgnr) = 9),
    fylke       TEXT             NOT NULL,
    bolge       INTEGER          NOT NULL,
    maal        TEXT             NOT NULL,
    verdi       DOUBLE PRECISION,
    antall_svar INTEGER          NOT NULL CHECK (antall_svar >= 0),
    created_at  TIMESTAMPTZ      NOT NULL,
    created_by  TEXT             NOT NULL,
    PRIMARY KEY (trial_id, orgnr, bolge, maal),
    FOREIGN KEY (trial_id, orgnr) REFERENCES assignments (trial_id, orgnr)
);

CREATE TRIGGER takeup_events_refuse_change BEFORE UPDATE OR DELETE ON takeup_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER takeup_events_refuse_truncate BEFORE TRUNCATE ON takeup_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER survey_results_refuse_change BEFORE UPDATE OR DELETE ON survey_results
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER survey_results_refuse_truncate BEFORE TRUNCATE ON survey_results
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
