"""The SQL service: the database API for plugins, failure events, classification, retry integration."""
