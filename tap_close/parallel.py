"""Run page-producing tasks on a bounded thread pool and hand their output back in order.

The caller sees exactly what a sequential loop would produce, in the same order, so STATE
stays resumable; only the waiting overlaps. Each task's output is buffered in a bounded
queue, so memory stays flat however large the data.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_DONE = object()
BUFFER_PAGES = 2  # pages a task may read ahead of the consumer


class _Task(Generic[T]):
    def __init__(self, produce: Callable[[], Iterable[T]], stop: threading.Event) -> None:
        self.queue: queue.Queue[object] = queue.Queue(maxsize=BUFFER_PAGES)
        self._stop = stop
        self.thread = threading.Thread(target=self._run, args=(produce,), daemon=True)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def _run(self, produce: Callable[[], Iterable[T]]) -> None:
        try:
            for item in produce():
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        self._put(_DONE)

    def results(self) -> Iterator[T]:
        while True:
            item = self.queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]


def ordered(tasks: Iterable[Callable[[], Iterable[T]]], workers: int) -> Iterator[T]:
    """Yield every item of every task, task by task in the given order.

    Up to `workers` tasks run at once; `tasks` may be lazy (even endless): the consumer
    stopping early (break, error, generator close) stops the pending tasks.
    """
    if workers <= 1:
        for produce in tasks:
            yield from produce()
        return
    stop = threading.Event()
    pending = iter(tasks)
    running: list[_Task[T]] = []
    try:
        while True:
            while len(running) < workers:
                nxt = next(pending, None)
                if nxt is None:
                    break
                task: _Task[T] = _Task(nxt, stop)
                task.thread.start()
                running.append(task)
            if not running:
                return
            yield from running.pop(0).results()
    finally:
        stop.set()


def chunked(items: Iterable[T], size: int = 100) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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

    def take(self, stream: Any, context: Any) -> Iterator[Any] | None:
        """The prefetched records of `stream` (None: read it now), and start the next ones."""
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
                upcoming._write_starting_replication_value(None)
                self._tasks[upcoming.name] = _Task(self._producer(upcoming), self._stop)
                self._tasks[upcoming.name].thread.start()
        if task is None:
            return None
        return (item for chunk in task.results() for item in chunk)

    @staticmethod
    def _producer(stream: Any) -> Callable[[], Iterable[list[Any]]]:
        return lambda: chunked(stream.read_records(None))

    def close(self) -> None:
        self._stop.set()
