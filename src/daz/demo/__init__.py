"""The offline self-healing demo behind ``daz demo`` (fake CyTube server, temporary SQLite)."""
