"""Units of work: the table writes and topic sends of the handlers, buffered and applied all or nothing.

While a unit is open (a contextvar, so only the task that opened it sees it), a `BufferedTable`
keeps writes and deletes in the unit instead of the store and reads see them first, and a
`BufferedTopic` keeps sends in order. Units nest: an agent folds a batch of events under one batch
unit, and each event under a child unit whose reads see the batch's earlier writes. When the event's
handlers succeed, `commit()` merges the child into the batch; `discard()` drops the child's writes
and sends and runs the undos registered for in-memory state derived from a table
(projections/derived.py), so a handler that raises half-way leaves every table, topic and derived
count as it was before the event. Before the merge, `ensure_fits` refuses a unit holding a value the
producer could not send (the event is dead-lettered instead of crashing the producer at the flush).

The batch unit's `commit()` is the flush, in two steps, each waiting for the broker:
1. the sends, in the order they were made (a compacted topic gets only the latest message per key,
   at the place of that latest send; a trigger already on its topic is dropped, see
   streams/trigger_ledger.py);
2. each changed key written once (its latest value, as the event that wrote it: Faust picks the
   store and changelog partition from the current stream event, and a batch spans partitions)
   through Faust's own path, store then changelog record, every write before the first await; then
   the changelog records' acknowledgements.
Only then does the agent ask for its next batch, which is when take_events acknowledges this one's
events, so a committed offset never passes an unacknowledged send or changelog record. (Faust's own
producer flush before an offset commit is not enough: it stops waiting when its buffer has not moved
for 0.1 s, and a batch's thousands of records can take longer.)

What a kill -9 leaves: in step 1, no state has moved, and the redelivered batch sends again (a
repeat, never a loss; repeated triggers are dropped by the ledger). In step 2 the local store holds
the whole batch (its writes ran without an await between them), so the restarted worker is
consistent and the redelivered events change nothing; but the changelog may lack some of the
batch's records until those keys are written again, so a partition that moves to another worker
before that restores them without it. Closing that gap needs the changelog records of a batch to be
atomic (a Kafka transaction, with restores reading committed data only): not done. Writing the
changelog first and the store after was tried, and the kill -9 test then lost recovery figures and
return-rate facts, most likely because a kill during the changelog step delivers one table's record
and not another's (an order's state without its figures) and the redelivered events, finding the
order moved, do not redo the figures.

No other agent sees a half-applied batch: every record is written by one agent only (the orders
agent also folds the recovery ticks, which move the order handlers' records), and reads inside a
unit see its own buffered writes first.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import weakref
from collections.abc import Awaitable, Callable, Iterator

import faust
from faust.streams import _current_event, current_event

DELETED = object()  # a buffered delete
RECORD_OVERHEAD_BYTES = 512  # batch and record headers around a key and value, with room to spare


class OversizedOutput(ValueError):
    """A write or send of the unit would be refused by the producer (larger than its max request size)."""


# Set by the worker (streams/trigger_ledger.py): given a flush's [(topic name, value)], says which to
# send; a trigger already on its topic is not sent again by a batch redelivered after a crash.
repeat_filter: Callable[[list[tuple[str, bytes | None]]], Awaitable[list[bool]]] | None = None

_open: contextvars.ContextVar[Unit | None] = contextvars.ContextVar("posvenda_unit_of_work", default=None)


class Unit:
    """Buffered writes (per table, latest value per key) and sends (in order) of one event or of a
    batch; a child unit (`parent` set) merges into its parent at commit."""

    def __init__(self, parent: Unit | None = None) -> None:
        self.parent = parent
        self.reads: dict[tuple, object] = {}  # {(table id, key, partition): stored value or DELETED}, root only
        self.tables: dict[int, BufferedTable] = {}  # by id(): a Mapping is not hashable
        self.writes: dict[int, dict] = {}  # {table id: {key: value or DELETED}}
        self.writers: dict[int, dict] = {}  # {table id: {key: the stream event of the latest write}}
        self.sends: list[tuple[BufferedTopic, dict, object]] = []  # (topic, send kwargs, stream event)
        self.undos: list[Callable[[], None]] = []

    def on_discard(self, undo: Callable[[], None]) -> None:
        """`undo()` runs if the unit is discarded: in-memory state moved for this event goes back."""
        self.undos.append(undo)

    def write(self, table: BufferedTable, key, value, writer=None) -> None:
        table_id = id(table)
        self.tables.setdefault(table_id, table)
        self.writes.setdefault(table_id, {})[key] = value
        self.writers.setdefault(table_id, {})[key] = current_event() if writer is None else writer

    def written(self, table: BufferedTable) -> dict | None:
        """{key: value or DELETED} buffered for `table` by this unit and its parents, or None."""
        own = self.writes.get(id(table))
        inherited = self.parent.written(table) if self.parent is not None else None
        if inherited is None or own is None:
            return own if inherited is None else inherited
        return {**inherited, **own}

    def lookup(self, table: BufferedTable, key) -> tuple[bool, object]:
        """(True, value or DELETED) when this unit or a parent holds `key` of `table`, else (False, None)."""
        unit = self
        while unit is not None:
            buffered = unit.writes.get(id(table))
            if buffered is not None and key in buffered:
                return True, buffered[key]
            unit = unit.parent
        return False, None

    def send(self, topic: BufferedTopic, kwargs: dict, sender=None) -> None:
        self.sends.append((topic, kwargs, current_event() if sender is None else sender))

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
        for topic, kwargs, _ in self.sends:
            size = len(kwargs.get("key") or b"") + len(kwargs.get("value") or b"")
            if size > limit:
                raise OversizedOutput(f"a message to {', '.join(topic.topics)} is {size:,} bytes, over the "
                                      f"{limit:,} the producer can send")

    async def commit(self) -> None:
        """Merges into the parent unit, or, for a unit without one (the flush): sends the messages in
        order and waits until the broker acknowledged every one, then applies the writes (each key
        once). Call it after the unit was closed. Raises if a send fails: the writes are then not
        applied, and the agent stops before its events are acknowledged."""
        if self.parent is not None:
            self._merge_into(self.parent)
        else:
            sends, self.sends = _collapsed(self.sends), []
            _flushing.append(self)  # until its writes are in the store, readers outside it see them too
            try:
                if repeat_filter is not None:
                    keep = await repeat_filter([(topic.topics[0], kwargs.get("value")) for topic, kwargs, _ in sends])
                    sends = [send for send, kept in zip(sends, keep, strict=True) if kept]
                deliveries = []
                for topic, kwargs, sender in sends:
                    with acting_as(sender):
                        deliveries.append(await topic.send_now(**kwargs))
                await asyncio.gather(*deliveries)  # every send acknowledged before any state moves
                with _collecting_changelog() as changelog:
                    self._apply_writes()
            finally:
                _flushing.remove(self)
            await acknowledged(changelog)  # and every changelog record before the batch is acknowledged
        self._clear()

    def _merge_into(self, parent: Unit) -> None:
        """The event is final: its writes and sends join the parent's; its undos are no longer needed."""
        for table_id, entries in self.writes.items():
            table = self.tables[table_id]
            writers = self.writers[table_id]
            for key, value in entries.items():
                parent.write(table, key, value, writers[key])
        parent.sends.extend(self.sends)

    def _apply_writes(self) -> None:
        """Every write, through Faust's own path (store, then a changelog record), without an await in
        between: no kill can land between two of them."""
        for table_id, entries in self.writes.items():
            table = self.tables[table_id]
            writers = self.writers[table_id]
            for key, value in entries.items():
                with acting_as(writers[key]):
                    if value is DELETED:
                        table.delete_now(key)
                    else:
                        table.set_now(key, value)

    def discard(self) -> None:
        """Drops the buffered writes and sends, and undoes in-memory moves (latest first)."""
        undos = self.undos
        self._clear()
        for undo in reversed(undos):
            undo()

    def root(self) -> Unit:
        unit = self
        while unit.parent is not None:
            unit = unit.parent
        return unit

    def _clear(self) -> None:
        self.tables, self.writes, self.writers, self.sends, self.undos, self.reads = {}, {}, {}, [], [], {}


def _collapsed(sends: list[tuple]) -> list[tuple]:
    """The sends in order, keeping only the latest message per key of a compacted topic (the one a
    compacted topic keeps anyway); every send to another topic stays (triggers, facts, dead letters)."""
    latest: dict[tuple, int] = {}
    for i, (topic, kwargs, _) in enumerate(sends):
        if getattr(topic, "compacted", False):
            latest[(id(topic), kwargs.get("key"), kwargs.get("partition"))] = i
    if not latest:
        return sends
    return [send for i, send in enumerate(sends)
            if not getattr(send[0], "compacted", False)
            or latest[(id(send[0]), send[1].get("key"), send[1].get("partition"))] == i]


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


@contextlib.contextmanager
def acting_as(event) -> Iterator[None]:
    """Makes `event` Faust's current stream event for the enclosed code: the partition table reads,
    writes and changelog records take (faust.streams.current_event, as Stream iteration sets it)."""
    if event is None or event is current_event():
        yield
        return
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


_flushing: list[Unit] = []  # batch units between the start of their flush and their store writes


def _in_flight(table) -> dict | None:
    """{key: value or DELETED} that flushing batches hold for `table` (the later batch wins), or None."""
    merged = None
    for unit in _flushing:
        writes = unit.writes.get(id(table))
        if writes:
            merged = {**(merged or {}), **writes}
    return merged


_changelog: contextvars.ContextVar[list | None] = contextvars.ContextVar("posvenda_changelog", default=None)


@contextlib.contextmanager
def _collecting_changelog() -> Iterator[list]:
    """Collects the delivery futures of the changelog records written in the enclosed code."""
    futures: list = []
    token = _changelog.set(futures)
    try:
        yield futures
    finally:
        _changelog.reset(token)


async def acknowledged(futures: list) -> None:
    """Waits until the broker acknowledged every changelog record of a flush."""
    await asyncio.gather(*futures)


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
        if unit is None:
            return super().__getitem__(key)
        found, value = unit.lookup(self, key)
        if not found:
            value = self._stored(unit, key)
        if value is DELETED:
            return self.__missing__(key)
        return value

    def __contains__(self, key) -> bool:
        unit = current()
        if unit is None:
            return super().__contains__(key)
        found, value = unit.lookup(self, key)
        if not found:
            value = self._stored(unit, key)
        return value is not DELETED

    def _stored(self, unit: Unit, key):
        """The store's value of `key` (DELETED when absent), read once per batch: the batch's unit
        keeps what it read (RocksDB reads and their decoding were a sixth of the worker's time; the
        recovery index asks for the same buckets event after event). Only this agent writes the key,
        and its own writes are looked up first, so the kept value cannot go stale within the batch."""
        root = unit.root()
        event = current_event()
        slot = (id(self), key, event.message.partition if event is not None else None)
        try:
            return root.reads[slot]
        except KeyError:
            pass
        try:
            value = super().__getitem__(key)
        except KeyError:
            value = DELETED
        root.reads[slot] = value
        return value

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
        """The store's items overlaid with the open unit's writes; outside a unit, with the writes of
        the batches being flushed. In-memory counts derived from a table (projections/derived.py)
        move when an event is folded, before its batch reaches the store: a rebuild from the store
        alone while a flush waits for its sends would drop those moves for good."""
        unit = current()
        buffered = unit.written(self) if unit is not None else _in_flight(self)
        if not buffered:
            return super().items()
        merged = [(k, v) for k, v in super().items() if k not in buffered]
        merged.extend((k, v) for k, v in buffered.items() if v is not DELETED)
        return merged

    def keys(self):
        return [k for k, _ in self.items()] if current() is not None or _flushing else super().keys()

    def values(self):
        return [v for _, v in self.items()] if current() is not None or _flushing else super().values()

    def __iter__(self):
        return iter(self.keys())

    def send_changelog(self, *args, **kwargs):
        """Faust's changelog send; its delivery future is kept when a flush collects them."""
        future = super().send_changelog(*args, **kwargs)
        collected = _changelog.get()
        if collected is not None:
            collected.append(future)
        return future

    def set_now(self, key, value) -> None:
        super().__setitem__(key, value)

    def delete_now(self, key) -> None:
        super().__delitem__(key)


class BufferedTopic(faust.Topic):
    """A Faust topic whose `send` is kept in the open unit of work, if any, and sent at its commit.

    `compacted` (a compacted topic keeps only the latest value per key): a batch sends only the
    latest message per key."""

    compacted: bool = False

    async def send(self, **kwargs):
        unit = current()
        if unit is None:
            return await self.send_now(**kwargs)
        unit.send(self, kwargs)
        return None

    async def send_now(self, **kwargs):
        return await super().send(**kwargs)
