-- Scale-out: instance heartbeats and room leases (PostgreSQL only; with SQLite the feature is off).
CREATE TABLE IF NOT EXISTS daz_instances (
    instance_id  text PRIMARY KEY,
    hostname     text NOT NULL DEFAULT '',
    pid          integer NOT NULL DEFAULT 0,
    version      text NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS daz_room_leases (
    room           text PRIMARY KEY,
    owner          text,
    previous_owner text,
    lease_until    timestamptz NOT NULL DEFAULT now(),
    fence          bigint NOT NULL DEFAULT 0,
    acquired_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS daz_room_leases_owner ON daz_room_leases (owner);
