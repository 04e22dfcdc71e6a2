"""The story of a run: schedule events, messages (``describe.message``) and Raft events.

Lines are kept unformatted (formatting every message would dominate the run time) and
rendered only when someone reads them: on a failure, or in the determinism test.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from minietcd.raft import describe
from minietcd.raft.events import RaftEvent
from minietcd.raft.types import Message

Item = tuple[int, str, object, str]  # (tick, kind, payload, note)


@dataclass(slots=True)
class Transcript:
    keep: int | None = 400  # how many recent lines to keep (None: all)
    items: deque[Item] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.items = deque(maxlen=self.keep)

    def say(self, now: int, text: str) -> None:
        """A schedule event ("crash n3", "partition n1,n2 | n3")."""
        self.items.append((now, "say", text, ""))

    def message(self, now: int, m: Message, note: str = "") -> None:
        self.items.append((now, "msg", m, note))

    def event(self, now: int, ev: RaftEvent) -> None:
        self.items.append((now, "event", ev, ""))

    def lines(self, last: int | None = None) -> list[str]:
        items = list(self.items)
        if last is not None:
            items = items[-last:]
        return [_render(i) for i in items]

    def render(self, last: int | None = None) -> str:
        return "\n".join(self.lines(last))


def _render(item: Item) -> str:
    now, kind, payload, note = item
    if kind == "msg":
        assert isinstance(payload, Message)
        text = "  " + describe.message(payload)
    elif kind == "event":
        assert isinstance(payload, RaftEvent)
        text = "  * " + describe.event_line(payload)
    else:
        text = str(payload)
    if note:
        text += f"  ({note})"
    return f"t={now:<4} {text}"
