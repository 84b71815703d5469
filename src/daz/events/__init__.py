"""The in-process event bus and event envelopes."""

from daz.events.bus import Event, EventBus, Subscription, pattern_matches

__all__ = ["Event", "EventBus", "Subscription", "pattern_matches"]
