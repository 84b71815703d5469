"""The database seam: one connector per backend, one pool per PostgreSQL database, one error translation.

A low package (it imports only ``errors``, ``config``, ``clock``, ``metrics`` and ``backoff``): the retry
store (``daz.store``), the SQL service (``daz.sql``), the cluster coordinator (``daz.cluster``) and the
migrations all reach their database through it, so dependencies point down. See docs/architecture.md.
"""
