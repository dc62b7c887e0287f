"""bridge.readahead: pages read by one thread ahead of the caller, errors raised where they belong."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from bridge.readahead import read_ahead


def test_items_arrive_in_order_from_one_other_thread() -> None:
    threads: set[str] = set()

    def produce() -> Iterator[int]:
        for i in range(50):
            threads.add(threading.current_thread().name)
            yield i

    assert list(read_ahead(produce, depth=3, name="reader")) == list(range(50))
    assert threads == {"reader"}


def test_the_producer_runs_at_most_depth_items_ahead() -> None:
    made: list[int] = []

    def produce() -> Iterator[int]:
        for i in range(100):
            made.append(i)
            yield i

    it = read_ahead(produce, depth=2)
    assert next(it) == 0
    time.sleep(0.3)  # give the producer every chance to run ahead
    # one handed out, two queued, one more blocked on the full queue
    assert len(made) <= 4
    it.close()


def test_a_producer_error_is_raised_in_the_caller_after_the_good_items() -> None:
    def produce() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("vendor down")

    got: list[int] = []

    def consume() -> None:
        got.extend(read_ahead(produce))

    with pytest.raises(ConnectionError, match="vendor down"):
        consume()
    assert got == [1, 2]


def test_leaving_early_stops_the_producer() -> None:
    stopped = threading.Event()

    def produce() -> Iterator[int]:
        try:
            yield from range(10_000)
        finally:
            stopped.set()

    for item in read_ahead(produce, depth=1):
        if item == 3:
            break
    assert stopped.wait(5)
    assert not any(t.name == "bridge-read-ahead" for t in threading.enumerate())


def test_a_caller_error_stops_the_producer_and_propagates() -> None:
    def produce() -> Iterator[int]:
        yield from range(1000)

    def consume() -> None:
        for item in read_ahead(produce, depth=2, name="crashy"):
            if item == 5:
                raise RuntimeError("crash at 5")

    with pytest.raises(RuntimeError, match="crash at 5"):
        consume()
    assert not any(t.name == "crashy" for t in threading.enumerate())
