"""The public test kit: fakes for every seam, and a fake CyTube server that speaks the real protocol.

Heavy parts (the fake server, the fault-injection kit, the stores) are imported from their own
modules so that importing ``daz.testing`` stays cheap.
"""

from daz.testing.clock import FakeClock
from daz.testing.memory_store import InMemoryStore

__all__ = ["FakeClock", "InMemoryStore"]
