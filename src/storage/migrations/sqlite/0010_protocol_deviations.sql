-- Protocol deviations (SQLite): a take-up record that shows contact with a design-A control firm,
-- or help to a control firm (src/takeup/deviation.rs). The take-up record is accepted, since it is
-- a fact, and flagged here in the same transaction. Kept in step with
-- migrations/postgres/0010_protocol_deviations.sql.

CREATE TABLE protocol_deviations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id        TEXT    NOT NULL REFERENCES trials (id),
    orgnr           TEXT    NOT NULL CHECK (length(orgnr) = 9),
    wave            INTEGER NOT NULL CHECK (wave >= 1),
    arm             TEXT    NOT NULL,
    fylke           TEXT    NOT NULL CHECK (length(fylke) = 2),
    kind            TEXT    NOT NULL CHECK (kind IN ('control_contacted', 'control_assisted')),
    -- The take-up record it came from: one deviation per record at most.
    takeup_event_id INTEGER NOT NULL UNIQUE REFERENCES takeup_events (id),
    recorded_at     TEXT    NOT NULL,
    recorded_by     TEXT    NOT NULL,
    FOREIGN KEY (trial_id, orgnr) REFERENCES assignments (trial_id, orgnr)
);

CREATE INDEX protocol_deviations_trial ON protocol_deviations (trial_id, arm, fylke);

CREATE TRIGGER protocol_deviations_refuse_update BEFORE UPDATE ON protocol_deviations
BEGIN SELECT RAISE(ABORT, 'protocol deviations are immutable'); END;
CREATE TRIGGER protocol_deviations_refuse_delete BEFORE DELETE ON protocol_deviations
BEGIN SELECT RAISE(ABORT, 'protocol deviations are immutable'); END;
