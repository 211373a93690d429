-- The key of an audit row that waited in the SQLite audit queue (`<database>.audit-queue`) while
-- an upload held the database's single writer: moving a queued row twice (a crash between the
-- move's commit and the queue's delete) inserts it once. NULL for rows written straight in.
-- PostgreSQL writes every audit row straight in; the column keeps the schemas in step.
ALTER TABLE audit_log ADD COLUMN queue_key TEXT;
CREATE UNIQUE INDEX audit_log_queue_key ON audit_log (queue_key);
