"""SQL for instance heartbeats and room leases. Every time comes from the database clock (now())."""

from __future__ import annotations

from typing import Final, LiteralString

HEARTBEAT: Final[LiteralString] = """
INSERT INTO daz_instances (instance_id, hostname, pid, version, started_at, heartbeat_at, capacity)
VALUES ($1, $2, $3, $4, now(), now(), $5::jsonb)
ON CONFLICT (instance_id) DO UPDATE
   SET heartbeat_at = now(), hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, version = EXCLUDED.version,
       capacity = EXCLUDED.capacity
"""

LIVE_INSTANCES: Final[LiteralString] = """
SELECT instance_id, hostname, pid, version, capacity::text AS capacity,
       extract(epoch FROM now() - heartbeat_at)::float8 AS heartbeat_age,
       extract(epoch FROM now() - started_at)::float8 AS uptime
  FROM daz_instances
 WHERE heartbeat_at > now() - make_interval(secs => $1)
 ORDER BY instance_id
"""

FORGET_INSTANCE: Final[LiteralString] = "DELETE FROM daz_instances WHERE instance_id = $1"

ENSURE_ROOMS: Final[LiteralString] = """
INSERT INTO daz_room_leases (room, owner, lease_until, fence, updated_at)
SELECT r, NULL, now(), 0, now() FROM unnest($1::text[]) AS r
ON CONFLICT (room) DO NOTHING
"""

READ_LEASES: Final[LiteralString] = """
SELECT room, owner, extract(epoch FROM lease_until - now())::float8 AS expires_in, fence,
       extract(epoch FROM now() - acquired_at)::float8 AS held_for
  FROM daz_room_leases
 WHERE room = ANY($1::text[])
"""

# Take a room only if it is free, expired, held by an instance that is no longer alive, or held by an
# owner this instance judged gone from its missing presence lock ($5 owners at $6 epochs; see
# daz.cluster.presence): re-checked here, in the same statement, so an owner that re-locked (a new
# epoch) keeps its rooms. The fence moves on every take-over, so work done on behalf of the room can
# be checked.
ACQUIRE: Final[LiteralString] = """
UPDATE daz_room_leases AS l
   SET owner = $2, lease_until = now() + make_interval(secs => $3), fence = l.fence + 1,
       acquired_at = now(), updated_at = now(),
       previous_owner = l.owner
 WHERE l.room = $1
   AND (l.owner IS NULL OR l.lease_until <= now()
        OR NOT EXISTS (SELECT 1 FROM daz_instances i
                        WHERE i.instance_id = l.owner
                          AND i.heartbeat_at > now() - make_interval(secs => $4))
        OR EXISTS (SELECT 1 FROM daz_instances i
                     JOIN unnest($5::text[], $6::bigint[]) AS d(owner, epoch) ON d.owner = i.instance_id
                    WHERE i.instance_id = l.owner AND i.presence_epoch = d.epoch
                      AND NOT EXISTS (
                          SELECT 1 FROM pg_locks k
                           WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 2
                             AND k.database = (SELECT oid FROM pg_database
                                                WHERE datname = current_database())
                             AND k.classid = hashtext(current_schema())::oid
                             AND k.objid = hashtext(l.owner)::oid)))
RETURNING l.fence, l.previous_owner
"""

RENEW: Final[LiteralString] = """
UPDATE daz_room_leases
   SET lease_until = now() + make_interval(secs => $3), updated_at = now()
 WHERE room = ANY($1::text[]) AND owner = $2 AND lease_until > now()
RETURNING room, fence
"""

# The channel every instance LISTENs on (per schema, like the retry queue's).
CHANNEL: Final[LiteralString] = "SELECT left('daz_cluster_' || current_schema(), 63)"

# Hand rooms back and tell the others at once (NOTIFY is delivered on commit): a peer under its fair
# share takes them on that signal, not on its next tick (rebalancing, a rolling restart).
RELEASE: Final[LiteralString] = """
WITH released AS (
    UPDATE daz_room_leases
       SET owner = NULL, lease_until = now(), updated_at = now()
     WHERE room = ANY($1::text[]) AND owner = $2
    RETURNING room
)
SELECT count(*) FROM released,
       (SELECT pg_notify(left('daz_cluster_' || current_schema(), 63), 'released')) AS wake
"""
