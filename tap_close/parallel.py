"""Run page-producing tasks on a bounded thread pool and hand their output back in order.

The caller sees exactly what a sequential loop would produce, in the same order, so STATE
stays resumable; only the waiting overlaps. Memory is bounded however large the data: the
task being consumed buffers at most BUFFER_PAGES pages, and the tasks waiting for their turn
share one `read_ahead` budget of response bytes across the whole process.
"""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
_DONE = object()
BUFFER_PAGES = 2  # pages a task may read ahead of the consumer
POLL = 1.0  # seconds: how often a blocked task checks for a stop it was not woken for
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc mallopt parameters


class Budget:
    """Response bytes held by tasks not being consumed yet, for all `ordered` calls at once.

    Before a waiting task reads its next page it reserves the size of its last one (the
    client reports the bytes each thread receives, `received`); the bytes go back when the
    consumer takes the page. The task being consumed never waits, so the consumer always
    progresses (a task is being consumed when it is the head of its `ordered` call and the
    thread consuming it is the main thread or a task being consumed). Bytes, not pages: a
    page of leads is ~7x a page of activities. One `ordered` call (the windows of one
    stream, a prefetched stream) may hold at most half, so big pages do not starve the rest.
    """

    def __init__(self, limit: int = 4 << 20) -> None:
        self.limit = limit
        self.last_page = 0  # bytes: a task's first reservation
        self._used = 0
        self._cond = threading.Condition()
        self._waiting: set[_Task[Any]] = set()

    def take(self, task: _Task[Any], estimate: int) -> int | None:
        """Reserve `estimate` bytes (waiting for room), or None if `task` is being consumed."""
        with self._cond:
            while not task.consumed() and not task.stopped() and (
                    (self._used and self._used + estimate > self.limit)
                    or (task.share[0] and task.share[0] + estimate > self.limit // 2)):
                self._waiting.add(task)
                self._cond.wait(POLL)
            self._waiting.discard(task)
            if task.consumed():
                return None
            self._used += estimate
            task.share[0] += estimate
            return estimate

    def adjust(self, change: int, share: list[int]) -> None:
        """Correct a reservation by `change` bytes; negative gives back."""
        with self._cond:
            self._used += change
            share[0] += change
            if change < 0:
                self._cond.notify_all()

    def wake(self) -> None:
        """A task became consumed: wake the waiting tasks if that exempts one of them."""
        with self._cond:
            if any(task.consumed() or task.stopped() for task in self._waiting):
                self._cond.notify_all()


_received = threading.local()
_current = threading.local()  # .task: the _Task whose thread this is


def received(size: int) -> None:
    """The client reports each response body's size, for the `Budget` of its thread."""
    _received.bytes = getattr(_received, "bytes", 0) + size


def _received_since_last() -> int:
    size = getattr(_received, "bytes", 0)
    _received.bytes = 0
    return size


read_ahead = Budget()


def cancelled() -> bool:
    """True in a task whose consumer has stopped (its results will be dropped)."""
    task = getattr(_current, "task", None)
    return task is not None and task.stopped()


def limit_malloc() -> None:
    """Keep glibc from holding freed memory: one malloc arena per thread keeps its own free
    pages, and a moving mmap threshold puts ~1 MB response bodies in those arenas. Two
    arenas and a fixed 256 KiB threshold (bodies are mapped and unmapped) keep peak RSS from
    growing with the data. Call before threads start; a no-op without glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_ARENA_MAX, 2)
    mallopt(M_MMAP_THRESHOLD, 256 * 1024)


class _Task(Generic[T]):
    def __init__(self, produce: Callable[[], Iterable[T]], stop: threading.Event,
                 budget: Budget | None = None, share: list[int] | None = None) -> None:
        self.queue: queue.Queue[object] = queue.Queue(maxsize=BUFFER_PAGES)
        self._stop = stop
        self._budget = budget
        self.head = budget is None  # its consumer has reached it
        # [bytes held by its `ordered` call, the size of that call's last page]
        self.share = [0, 0] if share is None else share
        self.parent: _Task[Any] | None = getattr(_current, "task", None)
        self.thread = threading.Thread(target=self._run, args=(produce,), daemon=True)

    def stopped(self) -> bool:
        return self._stop.is_set()

    def consumed(self) -> bool:
        """Being consumed: the head of its consumer, whose own thread is being consumed."""
        task: _Task[Any] | None = self
        while task is not None:
            if not task.head:
                return False
            task = task.parent
        return True

    def consume(self) -> Iterator[T]:
        """The task's items, once it is the consumer's turn."""
        self.head = True
        if self._budget:
            self._budget.wake()
        return self.results()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=POLL)
            except queue.Full:
                continue
            return True
        return False

    def _run(self, produce: Callable[[], Iterable[T]]) -> None:
        _current.task = self
        held = 0  # bytes reserved for the page being read
        try:
            items = iter(produce())
            estimate = (self.share[1] or self._budget.last_page) if self._budget else 0
            while True:
                reserved = self._budget.take(self, estimate) if self._budget else None
                held = reserved or 0
                _received_since_last()
                try:
                    item = next(items)
                except StopIteration:
                    break
                if self._budget:
                    estimate = self.share[1] = self._budget.last_page = _received_since_last()
                    if reserved is not None:
                        self._budget.adjust(estimate - held, self.share)
                        held = estimate
                if not self._put((item, held)):
                    break
                held = 0  # travels with the item
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
        else:
            self._put(_DONE)
        finally:
            self._give(held)
            if self.stopped():
                self.discard()

    def _give(self, size: int) -> None:
        if self._budget and size:
            self._budget.adjust(-size, self.share)

    def discard(self) -> None:
        """Drop what is queued (the consumer stopped early), returning its budget."""
        while True:
            try:
                entry = self.queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(entry, tuple):
                self._give(entry[1])

    def results(self) -> Iterator[T]:
        while True:
            entry = self.queue.get()
            if entry is _DONE:
                return
            if isinstance(entry, BaseException):
                raise entry
            page, held = cast("tuple[T, int]", entry)
            self._give(held)
            yield page


def ordered(tasks: Iterable[Callable[[], Iterable[T]]], workers: int | Callable[[], int],
            page_bytes: int = 0) -> Iterator[T]:
    """Yield every item of every task, task by task in the given order.

    Up to `workers` tasks run at once (a callable: asked before each task starts); `tasks`
    may be lazy (even endless): the consumer stopping early (break, error, generator close)
    stops the pending tasks. `page_bytes` is the expected size of a task's page (for the
    read-ahead budget; 0 = unknown).
    """
    limit = workers if callable(workers) else (lambda: workers)
    if not callable(workers) and workers <= 1:
        for produce in tasks:
            yield from produce()
        return
    stop = threading.Event()
    share = [0, page_bytes]
    pending = iter(tasks)
    running: list[_Task[T]] = []
    try:
        while True:
            while len(running) < max(1, limit()):
                nxt = next(pending, None)
                if nxt is None:
                    break
                task: _Task[T] = _Task(nxt, stop, read_ahead, share)
                task.thread.start()
                running.append(task)
            if not running:
                return
            yield from running.pop(0).consume()
    finally:
        stop.set()
        read_ahead.wake()
        for task in running:
            task.discard()


def chunked(items: Iterable[T], size: int = 100) -> Iterator[list[T]]:
    """Items in lists of about `size` rows; an item with a `rows_in` attribute (a page of
    rows) counts as that many, so a prefetched stream buffers few of its raw pages."""
    chunk: list[T] = []
    rows = 0
    for item in items:
        chunk.append(item)
        rows += getattr(item, "rows_in", 1)
        if rows >= size:
            yield chunk
            chunk, rows = [], 0
    if chunk:
        yield chunk


class Memo:
    """Values computed once per run and shared by threads: a second caller waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._values: dict[str, Any] = {}

    def get(self, key: str, compute: Callable[[], T]) -> T:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                self._values[key] = compute()
            return cast("T", self._values[key])


class Prefetcher:
    """Reads the next streams' records in the background while the SDK writes this one.

    The SDK syncs streams one after another; most Close streams are a few pages, so the
    time goes into waiting on HTTP. Up to `ahead` later streams start fetching early into
    bounded buffers; each stream still writes its records, in order, when its turn comes.
    """

    def __init__(self, streams: Callable[[], list[Any]], ahead: int) -> None:
        self._streams = streams
        self.ahead = ahead
        self._stop = threading.Event()
        self._tasks: dict[str, _Task[list[Any]]] = {}
        self._started: set[str] = set()

    def take(self, stream: Any, context: Any) -> Iterator[list[Any]] | None:
        """The prefetched records of `stream` in chunks (None: read it now); starts the next."""
        if self.ahead <= 1 or context is not None:
            return None
        order = self._streams()
        task = self._tasks.pop(stream.name, None)
        self._started.add(stream.name)
        names = [s.name for s in order]
        after = order[names.index(stream.name) + 1:] if stream.name in names else []
        for upcoming in after[: self.ahead]:
            if upcoming.name not in self._started:
                self._started.add(upcoming.name)
                # State dicts are created here, in the main thread: the SDK serialises the
                # whole state while other threads read theirs.
                upcoming.get_context_state(None)
                upcoming.write_starting_value(None)
                self._tasks[upcoming.name] = _Task(self._producer(upcoming), self._stop,
                                                   read_ahead)
                self._tasks[upcoming.name].thread.start()
        return None if task is None else task.consume()

    @staticmethod
    def _producer(stream: Any) -> Callable[[], Iterable[list[Any]]]:
        return lambda: chunked(stream.read_records(None))

    def close(self) -> None:
        self._stop.set()
