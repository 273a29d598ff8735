"""lamina.request_context.batch_work: the work class provider limits read."""

import asyncio

import pytest

from lamina.request_context import WORK_CLASS, batch_work


def test_batch_work_marks_the_block_and_restores_after():
    assert WORK_CLASS.get() == "interactive"
    with batch_work():
        assert WORK_CLASS.get() == "batch"
    assert WORK_CLASS.get() == "interactive"


def test_batch_work_restores_after_an_exception():
    with pytest.raises(RuntimeError), batch_work():
        raise RuntimeError("boom")
    assert WORK_CLASS.get() == "interactive"


async def test_tasks_started_inside_inherit_the_class_and_others_do_not():
    async def work_class() -> str:
        await asyncio.sleep(0)
        return WORK_CLASS.get()

    outside = asyncio.create_task(work_class())
    with batch_work():
        inside = asyncio.create_task(work_class())
    assert (await inside, await outside) == ("batch", "interactive")
