-- Keys of idempotent SQL execs already applied (daz.sql). The SQL service inserts the key in the same
-- transaction as the exec, ON CONFLICT DO NOTHING: a retried or duplicated exec finds its key and is a
-- no-op, so it applies exactly once.
CREATE TABLE IF NOT EXISTS daz_idempotency_keys (
    idempotency_key TEXT PRIMARY KEY,
    correlation_id  TEXT,
    source          TEXT,
    applied_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS daz_idempotency_keys_applied_at ON daz_idempotency_keys (applied_at);
