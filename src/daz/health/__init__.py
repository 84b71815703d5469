"""Health monitoring and observability: checks, the monitor, the HTTP endpoints and status page.

See docs/observability.md. This package imports no higher package (rooms, store, SQL, resilience):
``app.py`` registers what it reads as callables (``daz.health.sources``).
"""
