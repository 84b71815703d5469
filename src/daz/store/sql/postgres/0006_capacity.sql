-- Scale-out: each instance's socket cap per CyTube server ({"host:port": n}), published with its
-- heartbeat so the lease planner places rooms where there are free sockets. NULL: no cap known.
ALTER TABLE daz_instances ADD COLUMN IF NOT EXISTS capacity jsonb;
