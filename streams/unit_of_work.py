"""A unit of work per event: the table writes and topic sends of every handler, applied all or nothing.

While a unit is open (a contextvar, so only the task that opened it sees it), a `BufferedTable`
keeps writes and deletes in the unit instead of the store and reads see them first, and a
`BufferedTopic` keeps sends in order. `commit()` then applies the writes (latest value per key,
through Faust's own `__setitem__`/`__delitem__`, so each goes to the changelog as usual) and sends
the messages in the order they were made; `discard()` drops both and runs the undos registered for
in-memory state derived from a table (projections/derived.py), so a handler that raises half-way
leaves every table, topic and derived count as it was before the event.

Commit runs inside the same stream event as the handlers, so Faust still picks each changelog
partition from the current event (the source partition), exactly as for a direct write. Before it,
`ensure_fits` refuses a unit holding a value the producer could not send (the event is dead-lettered
instead of crashing the producer after half of its writes).

No other agent sees a half-applied event: a buffered send completes without suspending, so handlers
that only read, write and send run without yielding to the event loop, and `commit` applies every
write before its first await (the recovery tables, shared with the ticks agent, rely on this).

Kept general on purpose: buffered keyed writes and ordered sends are what a batch of events needs
too (a write-behind cache per batch).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterator

import faust

DELETED = object()  # a buffered delete
RECORD_OVERHEAD_BYTES = 512  # batch and record headers around a key and value, with room to spare


class OversizedOutput(ValueError):
    """A write or send of the unit would be refused by the producer (larger than its max request size)."""


_open: contextvars.ContextVar[Unit | None] = contextvars.ContextVar("posvenda_unit_of_work", default=None)


class Unit:
    """Buffered writes (per table, latest value per key) and sends (in order) of one event."""

    def __init__(self) -> None:
        self.tables: dict[int, BufferedTable] = {}  # by id(): a Mapping is not hashable
        self.writes: dict[int, dict] = {}
        self.sends: list[tuple[BufferedTopic, dict]] = []
        self.undos: list[Callable[[], None]] = []

    def on_discard(self, undo: Callable[[], None]) -> None:
        """`undo()` runs if the unit is discarded: in-memory state moved for this event goes back."""
        self.undos.append(undo)

    def write(self, table: BufferedTable, key, value) -> None:
        self.tables.setdefault(id(table), table)
        self.writes.setdefault(id(table), {})[key] = value

    def written(self, table: BufferedTable) -> dict | None:
        """{key: value or DELETED} buffered for `table`, or None."""
        return self.writes.get(id(table))

    def lookup(self, table: BufferedTable, key) -> tuple[bool, object]:
        """(True, value or DELETED) when the unit holds `key` of `table`, else (False, None)."""
        buffered = self.written(table)
        if buffered is None or key not in buffered:
            return False, None
        return True, buffered[key]

    def send(self, topic: BufferedTopic, kwargs: dict) -> None:
        self.sends.append((topic, kwargs))

    def ensure_fits(self, max_request_bytes: int) -> None:
        """Raises OversizedOutput when a buffered write or send could not be produced: checked before
        anything is applied, so such an event changes nothing instead of failing half-way."""
        limit = max_request_bytes - RECORD_OVERHEAD_BYTES
        for table_id, entries in self.writes.items():
            for key, value in entries.items():
                size = _json_size(key) + (0 if value is DELETED else _json_size(value))
                if size > limit:
                    raise OversizedOutput(f"a write to table {self.tables[table_id].name} is {size:,} bytes, over "
                                          f"the {limit:,} the producer can send")
        for topic, kwargs in self.sends:
            size = len(kwargs.get("key") or b"") + len(kwargs.get("value") or b"")
            if size > limit:
                raise OversizedOutput(f"a message to {', '.join(topic.topics)} is {size:,} bytes, over the "
                                      f"{limit:,} the producer can send")

    async def commit(self) -> None:
        """Applies the writes, then the sends in order; call it after the unit was closed."""
        for table_id, entries in self.writes.items():
            table = self.tables[table_id]
            for key, value in entries.items():
                if value is DELETED:
                    table.delete_now(key)
                else:
                    table.set_now(key, value)
        for topic, kwargs in self.sends:
            await topic.send_now(**kwargs)
        self.tables, self.writes, self.sends, self.undos = {}, {}, [], []

    def discard(self) -> None:
        """Drops the buffered writes and sends, and undoes in-memory moves (latest first)."""
        undos = self.undos
        self.tables, self.writes, self.sends, self.undos = {}, {}, [], []
        for undo in reversed(undos):
            undo()


def _json_size(value) -> int:
    return len(json.dumps(value, default=str).encode())


def current() -> Unit | None:
    return _open.get()


@contextlib.contextmanager
def opened(unit: Unit) -> Iterator[Unit]:
    """Makes `unit` the open one for the enclosed code (and the coroutines it awaits)."""
    token = _open.set(unit)
    try:
        yield unit
    finally:
        _open.reset(token)


class BufferedTable(faust.Table):
    """A Faust table whose writes, deletes and reads go through the open unit of work, if any.

    Set as the app's table class (`Table=` setting), so every `app.Table(...)` is one; outside a unit
    it behaves exactly like faust.Table."""

    def undo_on_discard(self, undo: Callable[[], None]) -> None:
        """For in-memory state derived from this table (projections/derived.py): `undo()` runs if the
        open unit is discarded; outside a unit the move is final and nothing is kept."""
        unit = current()
        if unit is not None:
            unit.on_discard(undo)

    def __getitem__(self, key):
        unit = current()
        if unit is not None:
            found, value = unit.lookup(self, key)
            if found:
                return self.__missing__(key) if value is DELETED else value
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        unit = current()
        if unit is not None:
            found, value = unit.lookup(self, key)
            if found:
                return value is not DELETED
        return super().__contains__(key)

    def __setitem__(self, key, value) -> None:
        unit = current()
        if unit is None:
            self.set_now(key, value)
        else:
            unit.write(self, key, value)

    def __delitem__(self, key) -> None:
        unit = current()
        if unit is None:
            self.delete_now(key)
            return
        if key not in self:
            raise KeyError(key)
        unit.write(self, key, DELETED)

    def items(self):
        """The store's items overlaid with the open unit's writes (a plain view outside a unit)."""
        unit = current()
        buffered = unit.written(self) if unit is not None else None
        if not buffered:
            return super().items()
        merged = [(k, v) for k, v in super().items() if k not in buffered]
        merged.extend((k, v) for k, v in buffered.items() if v is not DELETED)
        return merged

    def keys(self):
        return [k for k, _ in self.items()] if current() is not None else super().keys()

    def values(self):
        return [v for _, v in self.items()] if current() is not None else super().values()

    def __iter__(self):
        return iter(self.keys())

    def set_now(self, key, value) -> None:
        super().__setitem__(key, value)

    def delete_now(self, key) -> None:
        super().__delitem__(key)


class BufferedTopic(faust.Topic):
    """A Faust topic whose `send` is kept in the open unit of work, if any, and sent at its commit."""

    async def send(self, **kwargs):
        unit = current()
        if unit is None:
            return await self.send_now(**kwargs)
        unit.send(self, kwargs)
        return None

    async def send_now(self, **kwargs):
        return await super().send(**kwargs)
