-- NAV's firm-quarter sickness statistics, versioned by upload (SQLite).
-- Kept in step with migrations/postgres/0003_statistics.sql.

-- One accepted upload of statistics: its receipt. Its id is the vintage of the values it brought.
CREATE TABLE statistics_uploads (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256          TEXT    NOT NULL CHECK (length(sha256) = 64),
    idempotency_key TEXT    UNIQUE,
    source          TEXT    NOT NULL CHECK (source IN ('api', 'cli')),
    rows            INTEGER NOT NULL,
    inserted        INTEGER NOT NULL,
    unchanged       INTEGER NOT NULL,
    revised         INTEGER NOT NULL,
    created_at      TEXT    NOT NULL,
    created_by      TEXT    NOT NULL
);

-- Every value ever accepted for a firm-quarter, at full precision. A revision is a new row with a
-- later vintage; the old row stays. The register "as of" a vintage takes, per firm-quarter, the
-- row with the largest vintage not after it. The vintage is not a foreign key: the upload row and
-- its values are written in one transaction, and a per-row key check would double the cost of a
-- national upload.
CREATE TABLE statistics (
    orgnr           TEXT    NOT NULL CHECK (length(orgnr) = 9),
    arstall         INTEGER NOT NULL,
    kvartal         INTEGER NOT NULL CHECK (kvartal BETWEEN 1 AND 4),
    vintage         INTEGER NOT NULL,  -- statistics_uploads.id, written in the same transaction
    tapte_dagsverk  REAL    NOT NULL CHECK (tapte_dagsverk >= 0),
    mulige_dagsverk REAL    NOT NULL CHECK (mulige_dagsverk > 0),
    antall_personer INTEGER NOT NULL CHECK (antall_personer >= 0),
    tapte_gradert   REAL,
    prosent         REAL,
    rectype         TEXT,
    varighet        TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (orgnr, arstall, kvartal, vintage)
);

CREATE INDEX statistics_quarter ON statistics (arstall, kvartal);

CREATE TRIGGER statistics_refuse_update BEFORE UPDATE ON statistics
BEGIN SELECT RAISE(ABORT, 'statistics are immutable: a revision is a new vintage'); END;
CREATE TRIGGER statistics_refuse_delete BEFORE DELETE ON statistics
BEGIN SELECT RAISE(ABORT, 'statistics are immutable: a revision is a new vintage'); END;
CREATE TRIGGER statistics_uploads_refuse_update BEFORE UPDATE ON statistics_uploads
BEGIN SELECT RAISE(ABORT, 'statistics uploads are immutable'); END;
CREATE TRIGGER statistics_uploads_refuse_delete BEFORE DELETE ON statistics_uploads
BEGIN SELECT RAISE(ABORT, 'statistics uploads are immutable'); END;
