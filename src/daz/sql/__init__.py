"""The SQL plugin: the database API for plugins, failure events, classification, retry integration."""
