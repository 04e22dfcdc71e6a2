"""Finding an error by etcd's words, and the words etcd would send for an error.

Part of the one exception tree drawn in ``minietcd/errors/__init__.py``."""

from __future__ import annotations

from collections.abc import Iterator

from minietcd.errors.base import MinietcdError
from minietcd.errors.client import ClientError


def message_of(exc: BaseException) -> str:
    """The words etcd would send for ``exc``: its etcd message, else its text (its type's name
    when the text is empty or its ``__str__`` fails). Never a traceback."""
    message = getattr(exc, "etcd_message", None) if isinstance(exc, MinietcdError) else None
    if isinstance(message, str) and message:
        return message
    try:
        text = str(exc)
    except Exception:
        text = ""
    return text or type(exc).__name__


def etcd_errors() -> Iterator[type[MinietcdError]]:
    """Every leaf that is a row of etcd's rpctypes/error.go (defines its own ``go_name``), server
    side: the client branch re-raises some of them but adds none."""
    pending: list[type[MinietcdError]] = [MinietcdError]
    seen: set[type[MinietcdError]] = set()
    while pending:
        cls = pending.pop(0)
        if cls in seen or issubclass(cls, ClientError):
            continue
        seen.add(cls)
        if vars(cls).get("go_name") is not None:
            yield cls
        pending.extend(cls.__subclasses__())


def error_for_message(message: str) -> type[MinietcdError] | None:
    """The leaf whose etcd message is ``message`` (an etcd reply read back), if any."""
    if not _BY_MESSAGE:  # built on first use: every branch's module is loaded by then
        _BY_MESSAGE.update(
            (cls.etcd_message, cls) for cls in etcd_errors() if cls.etcd_message is not None
        )
    return _BY_MESSAGE.get(message)


_BY_MESSAGE: dict[str, type[MinietcdError]] = {}
