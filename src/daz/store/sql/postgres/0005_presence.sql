-- Scale-out: the epoch of each instance's presence lock (daz.cluster.presence). NULL for an instance
-- that holds no presence lock (an older version): it is judged by its lease only.
ALTER TABLE daz_instances ADD COLUMN IF NOT EXISTS presence_epoch bigint;
