-- daz retry queue (PostgreSQL). Table, column and status names are a stable interface: operators' queries use them.
CREATE TABLE IF NOT EXISTS daz_retry_queue (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    correlation_id   text        NOT NULL,
    idempotency_key  text,
    operation_type   text        NOT NULL,
    target           text,
    event_type       text,
    payload          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'dead_letter')),
    priority         integer     NOT NULL DEFAULT 0,
    attempt          integer     NOT NULL DEFAULT 0,
    max_retries      integer     NOT NULL,
    retry_after      timestamptz NOT NULL,
    lease_until      timestamptz,
    lease_owner      text,
    fence            bigint      NOT NULL DEFAULT 0,
    timeout_seconds  double precision NOT NULL,
    last_error       text,
    deferred_by      text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS daz_retry_queue_idempotency_key
    ON daz_retry_queue (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Claims walk this in order and stop after one batch: O(batch), not O(queue).
CREATE INDEX IF NOT EXISTS daz_retry_queue_due
    ON daz_retry_queue (priority DESC, retry_after, id) WHERE status = 'pending';

-- Crash recovery: expired leases are found without scanning pending or finished rows.
CREATE INDEX IF NOT EXISTS daz_retry_queue_leases
    ON daz_retry_queue (lease_until) WHERE status = 'processing';

CREATE INDEX IF NOT EXISTS daz_retry_queue_deferred
    ON daz_retry_queue (deferred_by, retry_after) WHERE status = 'pending' AND deferred_by IS NOT NULL;


CREATE OR REPLACE VIEW daz_retry_queue_stats AS
SELECT operation_type,
       status,
       count(*)                                            AS count,
       avg(attempt)::double precision                      AS avg_attempts,
       max(attempt)                                        AS max_attempts,
       CASE WHEN status = 'pending'
            THEN extract(epoch FROM now() - min(created_at))::double precision END
                                                           AS oldest_pending_age_seconds,
       min(created_at)                                     AS oldest_created_at
FROM daz_retry_queue
GROUP BY operation_type, status;
