"""stream_app/evaluation.py: batch results wait for the budget watcher until the interval has passed since the
last evaluation; nothing is dropped, order is kept, a failed evaluation's results go first next time."""

from __future__ import annotations

from stream_app.evaluation import Coalescer


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_first_batch_is_due_then_batches_wait_for_the_interval():
    clock = Clock()
    c: Coalescer[int] = Coalescer(0.25, clock)  # binary fractions: the sums below are exact
    assert c.add([1, 2]) is True  # nothing evaluated yet: due at once
    assert c.take() == [1, 2]
    clock.t += 0.0625
    assert c.add([3]) is False
    clock.t += 0.125
    assert c.add([4, 5]) is False
    assert len(c) == 3
    clock.t += 0.0625  # 0.25 s since the last take
    assert c.add([6]) is True
    assert c.take() == [3, 4, 5, 6]
    assert len(c) == 0


def test_nothing_held_is_never_due_and_an_empty_add_of_held_items_can_be():
    clock = Clock()
    c: Coalescer[int] = Coalescer(0.2, clock)
    assert c.add([]) is False
    c.add([1])
    c.take()
    c.add([2])
    clock.t += 1
    assert c.add([]) is True


def test_a_failed_evaluation_puts_its_results_back_first():
    clock = Clock()
    c: Coalescer[int] = Coalescer(0.2, clock)
    c.add([1, 2])
    failed = c.take()
    c.add([3])
    c.put_back(failed)
    assert c.take() == [1, 2, 3]


def test_interval_zero_evaluates_every_batch():
    c: Coalescer[int] = Coalescer(0.0, Clock())
    for i in range(5):
        assert c.add([i]) is True
        assert c.take() == [i]
