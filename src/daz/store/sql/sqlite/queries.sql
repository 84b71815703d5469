-- The retry store's statements on SQLite, one named block each (`-- name: <name>`), loaded once by
-- daz.store.queries. Parameters are qmark (?); times are UNIX seconds (REAL); lists arrive as JSON
-- arrays read with json_each. Row-returning blocks select the columns in daz.store.base.QueueItem's
-- order. The PostgreSQL twin is ../postgres/queries.sql; tests/contract/test_retry_store.py runs one
-- behaviour suite over both stores and the in-memory one.

-- name: schedule
INSERT INTO daz_retry_queue (correlation_id, idempotency_key, operation_type, target, event_type, payload,
                             priority, max_retries, retry_after, timeout_seconds, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING

-- name: schedule_claimed
-- The hand-off: the row a claim would leave (processing, fence 1, leased).
INSERT INTO daz_retry_queue (correlation_id, idempotency_key, operation_type, target, event_type, payload,
                             priority, max_retries, retry_after, timeout_seconds, created_at, updated_at,
                             status, fence, lease_until, lease_owner)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'processing', 1, ?, ?)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, correlation_id, idempotency_key, operation_type, target, event_type, payload, status,
          priority, attempt, max_retries, retry_after, lease_until, lease_owner, fence, timeout_seconds,
          last_error, created_at, updated_at, deferred_by

-- name: id_by_key
SELECT id FROM daz_retry_queue WHERE idempotency_key = ?

-- name: claim_expired
-- Filters: (ops, ops, targets, targets) as JSON arrays or NULL; a NULL list matches everything.
UPDATE daz_retry_queue
SET status = 'processing', fence = fence + 1, lease_until = ?, lease_owner = ?, updated_at = ?
WHERE id IN (
    SELECT id FROM daz_retry_queue
    WHERE status = 'processing' AND lease_until < ?
      AND (? IS NULL OR operation_type IN (SELECT value FROM json_each(?)))
      AND (? IS NULL OR target IS NULL OR target IN (SELECT value FROM json_each(?)))
    ORDER BY lease_until
    LIMIT ?
)
RETURNING id, correlation_id, idempotency_key, operation_type, target, event_type, payload, status,
          priority, attempt, max_retries, retry_after, lease_until, lease_owner, fence, timeout_seconds,
          last_error, created_at, updated_at, deferred_by

-- name: claim_due
UPDATE daz_retry_queue
SET status = 'processing', fence = fence + 1, lease_until = ?, lease_owner = ?, updated_at = ?
WHERE id IN (
    SELECT id FROM daz_retry_queue
    WHERE status = 'pending' AND retry_after <= ?
      AND (? IS NULL OR operation_type IN (SELECT value FROM json_each(?)))
      AND (? IS NULL OR target IS NULL OR target IN (SELECT value FROM json_each(?)))
    ORDER BY priority DESC, retry_after, id
    LIMIT ?
)
RETURNING id, correlation_id, idempotency_key, operation_type, target, event_type, payload, status,
          priority, attempt, max_retries, retry_after, lease_until, lease_owner, fence, timeout_seconds,
          last_error, created_at, updated_at, deferred_by

-- name: heartbeat
UPDATE daz_retry_queue SET lease_until = ?, updated_at = ?
WHERE id = ? AND fence = ? AND status = 'processing'

-- name: complete_many
-- (id, fence) pairs as a JSON array of two-element arrays.
UPDATE daz_retry_queue
SET status = 'completed', lease_until = NULL, lease_owner = NULL, updated_at = ?
WHERE status = 'processing' AND (id, fence) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))
RETURNING id

-- name: reschedule
UPDATE daz_retry_queue
SET status = 'pending', retry_after = ?, last_error = coalesce(?, last_error), attempt = attempt + ?,
    lease_until = NULL, lease_owner = NULL, deferred_by = ?, updated_at = ?
WHERE id = ? AND fence = ? AND status = 'processing'

-- name: dead_letter
UPDATE daz_retry_queue
SET status = 'dead_letter', last_error = ?, attempt = attempt + 1, lease_until = NULL, lease_owner = NULL,
    deferred_by = NULL, updated_at = ?
WHERE id = ? AND fence = ? AND status = 'processing'

-- name: requeue
UPDATE daz_retry_queue
SET status = 'pending', attempt = 0, retry_after = ?, lease_until = NULL, lease_owner = NULL,
    deferred_by = NULL, updated_at = ?
WHERE status IN ('dead_letter', 'failed')
  AND (? OR id IN (SELECT value FROM json_each(?)) OR operation_type = ?)

-- name: release_deferred
UPDATE daz_retry_queue SET retry_after = ?, deferred_by = NULL, updated_at = ?
WHERE id IN (
    SELECT id FROM daz_retry_queue
    WHERE status = 'pending' AND deferred_by = ?
    ORDER BY retry_after, id
    LIMIT ?
)

-- name: ack_pending
UPDATE daz_retry_queue SET status = 'completed', updated_at = ?
WHERE idempotency_key = ? AND status = 'pending'

-- name: purge
DELETE FROM daz_retry_queue WHERE status IN (SELECT value FROM json_each(?)) AND updated_at < ?

-- name: stats
SELECT operation_type, status, count, avg_attempts, max_attempts, oldest_created_at
FROM daz_retry_queue_stats ORDER BY operation_type, status

-- name: dead_letters_since
SELECT count(*) FROM daz_retry_queue WHERE status = 'dead_letter' AND updated_at >= ?

-- name: get
SELECT id, correlation_id, idempotency_key, operation_type, target, event_type, payload, status,
       priority, attempt, max_retries, retry_after, lease_until, lease_owner, fence, timeout_seconds,
       last_error, created_at, updated_at, deferred_by
FROM daz_retry_queue WHERE id = ?

-- name: list
SELECT id, correlation_id, idempotency_key, operation_type, target, event_type, payload, status,
       priority, attempt, max_retries, retry_after, lease_until, lease_owner, fence, timeout_seconds,
       last_error, created_at, updated_at, deferred_by
FROM daz_retry_queue
WHERE (? IS NULL OR status = ?) AND (? IS NULL OR operation_type = ?)
ORDER BY id
LIMIT ?

-- name: next_due
SELECT min(m) FROM (
    SELECT min(retry_after) AS m FROM daz_retry_queue WHERE status = 'pending'
    UNION ALL
    SELECT min(lease_until) FROM daz_retry_queue WHERE status = 'processing'
)

-- name: ping
SELECT 1
