-- The chatlog plugin's table (daz.plugins.chatlog). idempotency_key is derived from the event
-- (room, kind, server time, user, text), so a retried batch or a backlog replay is a no-op
-- (INSERT ... ON CONFLICT (idempotency_key) DO NOTHING).
CREATE TABLE IF NOT EXISTS daz_chatlog (
    id              bigserial PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    room            text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('chat', 'pm', 'join', 'leave', 'media')),
    username        text,
    target          text,
    message         text,
    meta            text,
    event_time_ms   bigint NOT NULL,
    logged_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS daz_chatlog_room_time ON daz_chatlog (room, event_time_ms);
