"""CyTube rooms: discovery, the wire protocol, verified sessions, supervision and the send API."""
