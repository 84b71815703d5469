"""The transport seam: a ``Transport`` protocol and its python-socketio adapter."""

from daz.transport.base import Closed, Inbound, Transport, TransportFactory, WireEvent, WireMalformed

__all__ = ["Closed", "Inbound", "Transport", "TransportFactory", "WireEvent", "WireMalformed"]
