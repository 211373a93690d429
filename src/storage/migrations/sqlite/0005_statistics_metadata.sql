-- NAV's virksomhet_metadata (sector and primary næring per firm-quarter), versioned by upload like
-- the statistics, and the quarters each register has (SQLite). Kept in step with migrations/postgres/0005_statistics_metadata.sql.

-- What an upload brought: sickness statistics (every upload before this migration) or metadata.
-- Both kinds share one sequence of vintages and one receipt table.
ALTER TABLE statistics_uploads ADD COLUMN kind TEXT NOT NULL DEFAULT 'statistics'
    CHECK (kind IN ('statistics', 'metadata'));

-- Every metadata value ever accepted for a firm-quarter; a revision is a new row with a later
-- vintage (statistics_uploads.id, written in the same transaction) and the old row stays.
CREATE TABLE statistics_metadata (
    orgnr              TEXT    NOT NULL CHECK (length(orgnr) = 9),
    arstall            INTEGER NOT NULL,
    kvartal            INTEGER NOT NULL CHECK (kvartal BETWEEN 1 AND 4),
    vintage            INTEGER NOT NULL,
    sektor             TEXT    NOT NULL CHECK (sektor IN ('STATLIG', 'KOMMUNAL', 'PRIVAT', 'UKJENT')),
    primaernaring      TEXT    CHECK (length(primaernaring) = 2),
    primaernaringskode TEXT    CHECK (length(primaernaringskode) = 5),
    rectype            TEXT,
    PRIMARY KEY (orgnr, arstall, kvartal, vintage)
);

-- The quarters in which each register has values: how an upload knows, without an index on the
-- registers' quarters (which would cost a third of the time of writing a national quarter), that
-- a quarter is new to the register and its rows can be written straight in. Written in the
-- transaction of the upload that brings a quarter's first values.
CREATE TABLE statistics_quarters (
    kind    TEXT    NOT NULL CHECK (kind IN ('statistics', 'metadata')),
    arstall INTEGER NOT NULL,
    kvartal INTEGER NOT NULL CHECK (kvartal BETWEEN 1 AND 4),
    PRIMARY KEY (kind, arstall, kvartal)
);

INSERT INTO statistics_quarters (kind, arstall, kvartal)
    SELECT DISTINCT 'statistics', arstall, kvartal FROM statistics;

-- Its only use was finding whether a quarter is in the register; statistics_quarters answers that.
DROP INDEX statistics_quarter;

CREATE TRIGGER statistics_metadata_refuse_update BEFORE UPDATE ON statistics_metadata
BEGIN SELECT RAISE(ABORT, 'statistics metadata are immutable: a revision is a new vintage'); END;
CREATE TRIGGER statistics_metadata_refuse_delete BEFORE DELETE ON statistics_metadata
BEGIN SELECT RAISE(ABORT, 'statistics metadata are immutable: a revision is a new vintage'); END;
CREATE TRIGGER statistics_quarters_refuse_update BEFORE UPDATE ON statistics_quarters
BEGIN SELECT RAISE(ABORT, 'statistics quarters are immutable'); END;
CREATE TRIGGER statistics_quarters_refuse_delete BEFORE DELETE ON statistics_quarters
BEGIN SELECT RAISE(ABORT, 'statistics quarters are immutable'); END;
