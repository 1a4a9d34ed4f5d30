"""The turn-of-the-loop batcher behind woken polls and fill reports: batches
formed as promised, a slot never lost, and no waiting item left unanswered
when the app stops (a batch answers its own items)."""

from __future__ import annotations

import asyncio

import pytest

from tradecast.kit.batching import TurnBatcher


class Recorder(TurnBatcher[int]):
    """Answers each item with the number of the batch it was in."""

    def __init__(self, *, batch_size: int = 10, concurrency: int = 1) -> None:
        super().__init__(batch_size=batch_size, concurrency=concurrency)
        self.batches: list[list[int]] = []
        self.answers: dict[int, asyncio.Future[int | None]] = {}
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False

    async def ask(self, item: int) -> int | None:
        self.answers[item] = asyncio.get_running_loop().create_future()
        self.submit(item)
        return await self.answers[item]

    async def run(self, batch: list[int]) -> None:
        self.batches.append(batch)
        await self.release.wait()
        if self.fail:
            raise RuntimeError("the database went away")
        for item in batch:
            self.answers[item].set_result(len(self.batches))

    def abandon(self, items: list[int]) -> None:
        for item in items:
            self.answers[item].set_result(None)


async def test_items_of_one_turn_form_one_batch() -> None:
    batcher = Recorder()
    assert await asyncio.gather(*(batcher.ask(n) for n in range(5))) == [1] * 5
    assert batcher.batches == [[0, 1, 2, 3, 4]]


async def test_items_arriving_while_every_slot_is_busy_join_the_next_batch() -> None:
    batcher = Recorder(batch_size=3)
    batcher.release.clear()
    first = asyncio.gather(*(batcher.ask(n) for n in range(2)))
    await asyncio.sleep(0.01)  # the first batch is running, its slot taken
    later = asyncio.gather(*(batcher.ask(n) for n in range(2, 7)))
    await asyncio.sleep(0.01)
    batcher.release.set()
    assert await first == [1, 1]
    # Five waited: the next batch took three (its size), the one after the rest.
    assert await later == [2, 2, 2, 3, 3]
    assert batcher.batches == [[0, 1], [2, 3, 4], [5, 6]]


async def test_a_failed_batch_frees_its_slot_for_the_next() -> None:
    batcher = Recorder()
    batcher.fail = True
    stranded = asyncio.ensure_future(batcher.ask(0))
    await asyncio.sleep(0.01)
    assert batcher.batches == [[0]]
    batcher.fail = False
    assert await asyncio.wait_for(batcher.ask(1), timeout=1) == 2
    stranded.cancel()


async def test_items_waiting_when_the_gathering_is_cancelled_are_abandoned() -> None:
    batcher = Recorder()
    batcher.release.clear()
    running = asyncio.ensure_future(batcher.ask(0))
    await asyncio.sleep(0.01)
    waiting = asyncio.gather(batcher.ask(1), batcher.ask(2))
    await asyncio.sleep(0.01)
    # The app stopping: the gathering, waiting for a slot, is cancelled.
    gathering = [task for task in batcher._running if task.get_coro().__name__ == "_gather"]
    assert len(gathering) == 1
    gathering[0].cancel()
    assert await asyncio.wait_for(waiting, timeout=1) == [None, None]
    # A later item starts a gathering of its own.
    batcher.release.set()
    assert await running == 1
    assert await asyncio.wait_for(batcher.ask(3), timeout=1) == 2


async def test_stop_waits_for_running_batches() -> None:
    batcher = Recorder()
    batcher.release.clear()
    answer = asyncio.ensure_future(batcher.ask(0))
    await asyncio.sleep(0.01)
    asyncio.get_running_loop().call_later(0.05, batcher.release.set)
    await batcher.stop()
    assert answer.done()
    assert answer.result() == 1


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_many_items_each_answered_once(concurrency: int) -> None:
    batcher = Recorder(batch_size=7, concurrency=concurrency)
    answers = await asyncio.gather(*(batcher.ask(n) for n in range(100)))
    assert all(answer is not None for answer in answers)
    assert sorted(item for batch in batcher.batches for item in batch) == list(range(100))
    assert max(len(batch) for batch in batcher.batches) <= 7
