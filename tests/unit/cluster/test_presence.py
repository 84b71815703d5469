"""The survivor's side of presence, pure: an owner is gone only after its lock has been missing, at
one epoch, for the whole grace; any sighting of the lock, or a new epoch, starts the count again."""

from __future__ import annotations

from daz.cluster.presence import PresenceTracker, Sighting, presence_stale, takeover_grace


def test_an_owner_is_gone_only_after_a_continuous_absence_of_the_grace() -> None:
    tracker = PresenceTracker(grace_seconds=2.0)
    tracker.observe([Sighting("b", 1, present=False)], now=10.0)
    assert tracker.gone(11.9) == {}
    tracker.observe([Sighting("b", 1, present=False)], now=11.0)  # still missing: the count goes on
    assert tracker.gone(12.0) == {"b": 1}


def test_a_sighting_of_the_lock_resets_the_count() -> None:
    tracker = PresenceTracker(grace_seconds=2.0)
    tracker.observe([Sighting("b", 1, present=False)], now=10.0)
    tracker.observe([Sighting("b", 1, present=True)], now=11.0)
    tracker.observe([Sighting("b", 1, present=False)], now=11.5)
    assert tracker.gone(13.0) == {}
    assert tracker.gone(13.5) == {"b": 1}


def test_a_new_epoch_means_the_owner_relocked_in_between_unseen() -> None:
    tracker = PresenceTracker(grace_seconds=2.0)
    tracker.observe([Sighting("b", 1, present=False)], now=10.0)
    tracker.observe([Sighting("b", 2, present=False)], now=11.0)  # re-locked and lost it again
    assert tracker.gone(12.5) == {}
    assert tracker.gone(13.0) == {"b": 2}


def test_an_owner_without_a_recent_heartbeat_is_left_to_the_lease_rule() -> None:
    tracker = PresenceTracker(grace_seconds=2.0)
    tracker.observe([Sighting("b", 1, present=False), Sighting("c", 4, present=False)], now=10.0)
    tracker.observe([Sighting("c", 4, present=False)], now=11.0)
    assert tracker.gone(20.0) == {"c": 4}
    assert tracker.missing() == ["c"]


def test_the_grace_covers_the_owner_noticing_and_leaving() -> None:
    grace = takeover_grace(presence_timeout=1.0, watchdog_period=0.25)
    assert grace >= 1.0 + 0.25  # the owner's own rule, plus the leave itself
    assert not presence_stale(5.0, 5.9, 1.0)
    assert presence_stale(5.0, 6.0, 1.0)
    assert presence_stale(None, 0.0, 1.0)  # never proven (or the session closed): nothing to hold
