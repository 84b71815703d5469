-- daz retry queue (SQLite). Times are REAL Unix seconds (UTC): cheap to compare and index.
CREATE TABLE IF NOT EXISTS daz_retry_queue (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    correlation_id   TEXT    NOT NULL,
    idempotency_key  TEXT,
    operation_type   TEXT    NOT NULL,
    target           TEXT,
    event_type       TEXT,
    payload          TEXT    NOT NULL DEFAULT '{}',
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'dead_letter')),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_retries      INTEGER NOT NULL,
    retry_after      REAL    NOT NULL,
    lease_until      REAL,
    lease_owner      TEXT,
    fence            INTEGER NOT NULL DEFAULT 0,
    timeout_seconds  REAL    NOT NULL,
    last_error       TEXT,
    deferred_by      TEXT,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS daz_retry_queue_idempotency_key
    ON daz_retry_queue (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE INDEX IF NOT EXISTS daz_retry_queue_due
    ON daz_retry_queue (priority DESC, retry_after, id) WHERE status = 'pending';

CREATE INDEX IF NOT EXISTS daz_retry_queue_leases
    ON daz_retry_queue (lease_until) WHERE status = 'processing';

CREATE INDEX IF NOT EXISTS daz_retry_queue_deferred
    ON daz_retry_queue (deferred_by, retry_after) WHERE status = 'pending' AND deferred_by IS NOT NULL;


DROP VIEW IF EXISTS daz_retry_queue_stats;
CREATE VIEW daz_retry_queue_stats AS
SELECT operation_type,
       status,
       count(*)                                   AS count,
       avg(attempt)                               AS avg_attempts,
       max(attempt)                               AS max_attempts,
       CASE WHEN status = 'pending'
            THEN (julianday('now') - 2440587.5) * 86400.0 - min(created_at) END
                                                  AS oldest_pending_age_seconds,
       min(created_at)                            AS oldest_created_at
FROM daz_retry_queue
GROUP BY operation_type, status;
