-- NAV's firm-quarter sickness statistics, versioned by upload (PostgreSQL).
-- Kept in step with migrations/sqlite/0003_statistics.sql.

-- One accepted upload of statistics: its receipt. Its id is the vintage of the values it brought.
CREATE TABLE statistics_uploads (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256          TEXT        NOT NULL CHECK (length(sha256) = 64),
    idempotency_key TEXT        UNIQUE,
    source          TEXT        NOT NULL CHECK (source IN ('api', 'cli')),
    rows            BIGINT      NOT NULL,
    inserted        BIGINT      NOT NULL,
    unchanged       BIGINT      NOT NULL,
    revised         BIGINT      NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    created_by      TEXT        NOT NULL
);

-- Every value ever accepted for a firm-quarter, at full precision. A revision is a new row with a
-- later vintage; the old row stays. The register "as of" a vintage takes, per firm-quarter, the
-- row with the largest vintage not after it. The vintage is not a foreign key: the upload row and
-- its values are written in one transaction, and a per-row key check would double the cost of a
-- national upload.
CREATE TABLE statistics (
    orgnr           TEXT             NOT NULL CHECK (length(orgnr) = 9),
    arstall         INTEGER          NOT NULL,
    kvartal         INTEGER          NOT NULL CHECK (kvartal BETWEEN 1 AND 4),
    vintage         BIGINT           NOT NULL,  -- statistics_uploads.id, written in the same transaction
    tapte_dagsverk  DOUBLE PRECISION NOT NULL CHECK (tapte_dagsverk >= 0),
    mulige_dagsverk DOUBLE PRECISION NOT NULL CHECK (mulige_dagsverk > 0),
    antall_personer INTEGER          NOT NULL CHECK (antall_personer >= 0),
    tapte_gradert   DOUBLE PRECISION,
    prosent         DOUBLE PRECISION,
    rectype         TEXT,
    varighet        TEXT             NOT NULL DEFAULT '{}',
    PRIMARY KEY (orgnr, arstall, kvartal, vintage)
);

CREATE INDEX statistics_quarter ON statistics (arstall, kvartal);

CREATE TRIGGER statistics_refuse_change BEFORE UPDATE OR DELETE ON statistics
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER statistics_refuse_truncate BEFORE TRUNCATE ON statistics
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER statistics_uploads_refuse_change BEFORE UPDATE OR DELETE ON statistics_uploads
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER statistics_uploads_refuse_truncate BEFORE TRUNCATE ON statistics_uploads
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
