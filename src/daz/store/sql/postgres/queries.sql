-- The retry store's statements on PostgreSQL, one named block each (`-- name: <name>`), loaded once
-- by daz.store.queries. Parameters are asyncpg's $n. Row-returning blocks select the columns in
-- daz.store.base.QueueItem's order. New items arrive with their defaults already applied
-- (daz.store.base.with_defaults). The SQLite twin is ../sqlite/queries.sql;
-- tests/contract/test_retry_store.py runs one behaviour suite over both stores and the in-memory one.
-- Wake-ups: schedule, requeue and release_deferred NOTIFY the channel passed as their last parameter.

-- name: schedule
WITH ins AS (
    INSERT INTO daz_retry_queue (correlation_id, idempotency_key, operation_type, target, event_type,
                                 payload, priority, max_retries, retry_after, timeout_seconds,
                                 created_at, updated_at)
    SELECT c, k, o, t, e, p::jsonb, pr, mr, ra, ts, $11, $11
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
                $8::int[], $9::timestamptz[], $10::float8[])
         WITH ORDINALITY AS u(c, k, o, t, e, p, pr, mr, ra, ts, ord)
    ORDER BY ord
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, idempotency_key
)
SELECT ins.id, ins.idempotency_key FROM ins, (SELECT pg_notify($12, '')) AS wake

-- name: schedule_claimed
-- The hand-off: the rows a claim would leave (processing, fence 1, leased), and no NOTIFY, since no
-- other worker could claim them.
INSERT INTO daz_retry_queue (correlation_id, idempotency_key, operation_type, target, event_type,
                             payload, priority, max_retries, retry_after, timeout_seconds,
                             created_at, updated_at, status, fence, lease_until, lease_owner)
SELECT c, k, o, t, e, p::jsonb, pr, mr, ra, ts, $11, $11, 'processing', 1, $12, $13
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
            $8::int[], $9::timestamptz[], $10::float8[])
     WITH ORDINALITY AS u(c, k, o, t, e, p, pr, mr, ra, ts, ord)
ORDER BY ord
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, correlation_id, idempotency_key, operation_type, target, event_type, payload::text, status,
          priority, attempt, max_retries, retry_after, lease_until, lease_owner, fence, timeout_seconds,
          last_error, created_at, updated_at, deferred_by

-- name: ids_by_key
SELECT idempotency_key, id FROM daz_retry_queue WHERE idempotency_key = ANY($1::text[])

-- name: claim
WITH expired AS (
    SELECT id FROM daz_retry_queue
    WHERE status = 'processing' AND lease_until < $1
      AND ($5::text[] IS NULL OR operation_type = ANY($5))
      AND ($6::text[] IS NULL OR target IS NULL OR target = ANY($6))
    ORDER BY lease_until
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), due AS (
    SELECT id FROM daz_retry_queue
    WHERE status = 'pending' AND retry_after <= $1
      AND ($5::text[] IS NULL OR operation_type = ANY($5))
      AND ($6::text[] IS NULL OR target IS NULL OR target = ANY($6))
    ORDER BY priority DESC, retry_after, id
    LIMIT greatest($2 - (SELECT count(*) FROM expired), 0)
    FOR UPDATE SKIP LOCKED
)
-- ARRAY(...) is computed once, so the update reaches its rows by primary key (a join here made the
-- planner hash the whole table).
UPDATE daz_retry_queue q
SET status = 'processing', fence = q.fence + 1, lease_until = $3, lease_owner = $4, updated_at = $1
WHERE q.id = ANY(ARRAY(SELECT id FROM expired UNION ALL SELECT id FROM due))
RETURNING q.id, q.correlation_id, q.idempotency_key, q.operation_type, q.target, q.event_type,
          q.payload::text, q.status, q.priority, q.attempt, q.max_retries, q.retry_after, q.lease_until,
          q.lease_owner, q.fence, q.timeout_seconds, q.last_error, q.created_at, q.updated_at,
          q.deferred_by, q.id = ANY(ARRAY(SELECT id FROM expired))

-- name: heartbeat
UPDATE daz_retry_queue SET lease_until = $3, updated_at = $4
WHERE id = $1 AND fence = $2 AND status = 'processing'

-- name: complete_many
UPDATE daz_retry_queue q
SET status = 'completed', lease_until = NULL, lease_owner = NULL, updated_at = $3
WHERE q.id = ANY($1::bigint[]) AND q.status = 'processing'
  -- a lookup, not a join: joined with unnest() the generic plan hashed the whole table
  AND q.fence = ($2::bigint[])[array_position($1::bigint[], q.id)]
RETURNING q.id

-- name: reschedule
UPDATE daz_retry_queue
SET status = 'pending', retry_after = $3, last_error = coalesce($4, last_error),
    attempt = attempt + $5, lease_until = NULL, lease_owner = NULL, deferred_by = $6, updated_at = $7
WHERE id = $1 AND fence = $2 AND status = 'processing'

-- name: dead_letter
UPDATE daz_retry_queue
SET status = 'dead_letter', last_error = $3, attempt = attempt + 1, lease_until = NULL,
    lease_owner = NULL, deferred_by = NULL, updated_at = $4
WHERE id = $1 AND fence = $2 AND status = 'processing'

-- name: requeue
WITH moved AS (
    UPDATE daz_retry_queue
    SET status = 'pending', attempt = 0, retry_after = $4, lease_until = NULL, lease_owner = NULL,
        deferred_by = NULL, updated_at = $4
    WHERE status IN ('dead_letter', 'failed')
      AND ($3 OR id = ANY($1::bigint[]) OR operation_type = $2)
    RETURNING id
)
SELECT count(*) FROM moved, (SELECT pg_notify($5, '')) AS wake

-- name: release_deferred
WITH picked AS (
    SELECT id FROM daz_retry_queue
    WHERE status = 'pending' AND deferred_by = $1
    ORDER BY retry_after, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE daz_retry_queue q SET retry_after = $3, deferred_by = NULL, updated_at = $3
    FROM picked WHERE q.id = picked.id
    RETURNING q.id
)
SELECT count(*) FROM moved, (SELECT pg_notify($4, '')) AS wake

-- name: ack_pending
UPDATE daz_retry_queue SET status = 'completed', updated_at = $2
WHERE idempotency_key = $1 AND status = 'pending'

-- name: purge
DELETE FROM daz_retry_queue WHERE status = ANY($1::text[]) AND updated_at < $2

-- name: stats
SELECT operation_type, status, count, avg_attempts, max_attempts, oldest_created_at
FROM daz_retry_queue_stats ORDER BY operation_type, status

-- name: dead_letters_since
-- Counted in the database: the health check asks every tick, whatever the number.
SELECT count(*) FROM daz_retry_queue WHERE status = 'dead_letter' AND updated_at >= $1

-- name: get
SELECT id, correlation_id, idempotency_key, operation_type, target, event_type, payload::text, status,
       priority, attempt, max_retries, retry_after, lease_until, lease_owner, fence, timeout_seconds,
       last_error, created_at, updated_at, deferred_by
FROM daz_retry_queue WHERE id = $1

-- name: list
SELECT id, correlation_id, idempotency_key, operation_type, target, event_type, payload::text, status,
       priority, attempt, max_retries, retry_after, lease_until, lease_owner, fence, timeout_seconds,
       last_error, created_at, updated_at, deferred_by
FROM daz_retry_queue
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR operation_type = $2)
ORDER BY id
LIMIT $3

-- name: next_due
SELECT least(
    (SELECT min(retry_after) FROM daz_retry_queue WHERE status = 'pending'),
    (SELECT min(lease_until) FROM daz_retry_queue WHERE status = 'processing')
)

-- name: current_schema
SELECT current_schema()

-- name: ping
SELECT 1

-- name: database_now
-- The server's clock for daz.store.dbclock (clock_timestamp: the moment of the call, not of the
-- transaction's start).
SELECT clock_timestamp()
