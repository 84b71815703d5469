-- The chatlog plugin's table (daz.plugins.chatlog). idempotency_key is derived from the event
-- (room, kind, server time, user, text), so a retried batch or a backlog replay is a no-op
-- (INSERT ... ON CONFLICT (idempotency_key) DO NOTHING).
CREATE TABLE IF NOT EXISTS daz_chatlog (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    room            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('chat', 'pm', 'join', 'leave', 'media')),
    username        TEXT,
    target          TEXT,
    message         TEXT,
    meta            TEXT,
    event_time_ms   INTEGER NOT NULL,
    logged_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX IF NOT EXISTS daz_chatlog_room_time ON daz_chatlog (room, event_time_ms);
