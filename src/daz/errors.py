"""One error hierarchy for daz.

Driver and library exceptions are translated at the boundary into these, chained with ``from exc``.
Each error says whether retrying can help (``retryable``) and, where known, which operation and
correlation id it belongs to, so the retry layer, breakers and logs never guess from message text.
"""

from __future__ import annotations


class DazError(Exception):
    """Root of every error daz raises on purpose."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        correlation_id: str | None = None,
        operation_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        self.correlation_id = correlation_id
        self.operation_type = operation_type

    def __str__(self) -> str:
        return self.message


class IllegalTransition(DazError, ValueError):
    """A state machine was asked for a move its transition table does not allow: a bug in the
    caller, never retried."""


class ConfigError(DazError):
    """A configuration problem; ``problems`` holds one line per field (path: what, expected)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message, retryable=False)
        self.problems = problems if problems is not None else [message]


class StoreError(DazError):
    """The retry store failed an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now; the operation may succeed later."""

    retryable = True


class StaleFence(StoreError):
    """A worker presented a fence that no longer owns the item (its lease was reclaimed)."""

    def __init__(self, item_id: int, fence: int) -> None:
        super().__init__(f"item {item_id}: fence {fence} no longer owns it")
        self.item_id = item_id
        self.fence = fence


class ItemNotFound(StoreError):
    """No queue item has the given id."""


class SpoolFull(DazError):
    """The local durable spool reached its size limit."""


class TransportError(DazError):
    """A connection-level failure; keeps the server's reason where there is one."""

    retryable = True

    def __init__(self, message: str, *, reason: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.reason = reason if reason is not None else message


class ConnectFailed(TransportError):
    """The connection could not be opened (refused, DNS, handshake)."""


class ServerUnreachable(ConnectFailed):
    """The connection never reached the server's Socket.IO layer (refused, reset, no handshake), so
    the server counted no connection token for it."""


class RateLimited(ConnectFailed):
    """The server refused the connection with ``Rate limit exceeded``."""


class ServerDisconnected(TransportError):
    """The server closed the connection (``transport error``, ``server disconnect``)."""


class Kicked(TransportError):
    """The server kicked this client; ``reason`` is the server's text (e.g. ``Duplicate login``)."""


class NotConnected(TransportError):
    """An emit was attempted without a live connection."""


class SessionError(DazError):
    """Joining or logging in to a channel failed."""

    retryable = True


class LoginFailed(SessionError):
    """The server answered ``login`` with ``success: false``; ``reason`` is its error text."""

    def __init__(self, message: str, *, reason: str, retryable: bool = False) -> None:
        super().__init__(message, retryable=retryable)
        self.reason = reason


class ChannelPasswordRefused(SessionError):
    """The channel asks for a password daz has not got or got wrong (``needPassword``); a moderator
    account needs none, so this is also what a lower rank without a channel password gets."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class SessionTimeout(SessionError):
    """The server did not answer a session step within its timeout."""


class CircuitOpen(DazError):
    """A circuit breaker refused the call; try again after ``retry_after`` seconds."""

    retryable = True

    def __init__(self, name: str, retry_after: float, **kwargs: object) -> None:
        super().__init__(
            f"circuit '{name}' is open; retry in {retry_after:.1f}s", **kwargs  # type: ignore[arg-type]
        )
        self.name = name
        self.retry_after = retry_after


class UnknownBreaker(DazError):
    """An operator named a circuit breaker that is neither configured nor in use."""


class SqlError(DazError):
    """A SQL operation failed; ``sqlstate`` is the server's code where there is one."""

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        retryable: bool | None = None,
        correlation_id: str | None = None,
        operation_type: str | None = None,
    ) -> None:
        super().__init__(
            message, retryable=retryable, correlation_id=correlation_id, operation_type=operation_type
        )
        self.sqlstate = sqlstate


class SqlRetryScheduled(SqlError):
    """An idempotent exec failed now and was queued (``sql_operation``) to run again: it will apply once."""


class RequestTimeout(DazError):
    """A bus request got no reply within its timeout."""

    retryable = True


class NoHandler(DazError):
    """A bus request or queue item has nobody to handle it."""


class SendInvalid(DazError, ValueError):
    """A plugin's send call is malformed (e.g. ``action`` not a bool); nothing was queued."""


class ActionError(DazError):
    """A channel action (queue, delete, kick, poll, ...) did not take effect; ``kind`` names the action."""

    def __init__(self, message: str, *, kind: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.kind = kind


class ActionInvalid(ActionError, ValueError):
    """The action is malformed (unknown media type, poll limits, a bad name); nothing was sent."""


class ActionNotPermitted(ActionError):
    """The bot's rank is below the permission the action needs (or the key is absent: nobody has it).
    Never sent, never retried."""

    def __init__(
        self, message: str, *, key: str, needed: float | None, rank: float, **kwargs: object
    ) -> None:
        super().__init__(message, retryable=False, **kwargs)  # type: ignore[arg-type]
        self.key = key
        self.needed = needed
        self.rank = rank


class ActionRefused(ActionError):
    """The server refused the action with a message (``queueFail``, ``errorMsg``, ``channelRankFail``)."""

    def __init__(self, message: str, *, server_message: str, category: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.server_message = server_message
        self.category = category


class ActionUnanswered(ActionError):
    """The server never answered and the replica shows no effect: "no reply (dropped by the server)"."""


class RoomNotReady(DazError):
    """A request that needs a live connection (a query such as ``banlist``) was made while the room is
    not READY here; nothing was sent. Retryable: ask again after ``room.ready``."""

    retryable = True


class BanlistUnanswered(ActionError):
    """``requestBanlist`` got no ``banlist`` reply in time. CyTube answers it only to users with the
    ``ban`` permission in a registered channel and is silent otherwise; daz checks that first, so the
    usual cause is a slow server or a permission changed on the server a moment ago."""

    retryable = True
