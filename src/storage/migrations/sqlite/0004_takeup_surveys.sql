-- What was delivered (take-up events after Fia's statuses) and work-environment survey results
-- (SQLite). Kept in step with migrations/postgres/0004_takeup_surveys.sql.

CREATE TABLE takeup_events (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id           TEXT    NOT NULL REFERENCES trials (id),
    orgnr              TEXT    NOT NULL CHECK (length(orgnr) = 9),
    fylke              TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('KONTAKTET', 'TAKKET_NEI', 'AKTIV', 'FULLFØRT', 'AVBRUTT')),
    dato               TEXT    NOT NULL,
    arbeidsform_levert TEXT,
    timer              REAL    CHECK (timer IS NULL OR timer >= 0),
    merknad            TEXT,
    upload_row         INTEGER NOT NULL,
    created_at         TEXT    NOT NULL,
    created_by         TEXT    NOT NULL,
    FOREIGN KEY (trial_id, orgnr) REFERENCES assignments (trial_id, orgnr)
);

CREATE INDEX takeup_events_firm ON takeup_events (trial_id, orgnr, dato, id);

CREATE TABLE survey_results (
    trial_id    TEXT    NOT NULL REFERENCES trials (id),
    orgnr       TEXT    NOT NULL CHECK (length(orgnr) = 9),
    fylke       TEXT    NOT NULL,
    bolge       INTEGER NOT NULL,
    maal        TEXT    NOT NULL,
    verdi       REAL,
    antall_svar INTEGER NOT NULL CHECK (antall_svar >= 0),
    created_at  TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    PRIMARY KEY (trial_id, orgnr, bolge, maal),
    FOREIGN KEY (trial_id, orgnr) REFERENCES assignments (trial_id, orgnr)
);

CREATE TRIGGER takeup_events_refuse_update BEFORE UPDATE ON takeup_events
BEGIN SELECT RAISE(ABORT, 'take-up events are immutable'); END;
CREATE TRIGGER takeup_events_refuse_delete BEFORE DELETE ON takeup_events
BEGIN SELECT RAISE(ABORT, 'take-up events are immutable'); END;
CREATE TRIGGER survey_results_refuse_update BEFORE UPDATE ON survey_results
BEGIN SELECT RAISE(ABORT, 'survey results are immutable'); END;
CREATE TRIGGER survey_results_refuse_delete BEFORE DELETE ON survey_results
BEGIN SELECT RAISE(ABORT, 'survey results are immutable'); END;
