"""The suite-wide guard against exceptions nobody retrieved (``daz.testing.leaks``)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from daz.testing.leaks import UnretrievedExceptions, unretrieved_in

pytest_plugins = ["pytester"]


def _leak_a_future() -> None:
    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(RuntimeError("nobody awaited me"))

    asyncio.run(main())


def _leak_a_task() -> None:
    async def crash() -> None:
        raise RuntimeError("a task nobody awaited")

    async def main() -> None:
        asyncio.get_running_loop().create_task(crash())
        await asyncio.sleep(0)

    asyncio.run(main())


@pytest.mark.parametrize(("leak", "marker"), [(_leak_a_future, "Future exception was never retrieved"),
                                              (_leak_a_task, "Task exception was never retrieved")])
def test_the_detector_sees_futures_and_tasks(
    leak: object, marker: str, fail_on_unretrieved_exceptions: UnretrievedExceptions
) -> None:
    leak()  # type: ignore[operator]
    # The suite's own (autouse) detector: taking its reports keeps this deliberate leak from
    # failing the test at teardown.
    reports = fail_on_unretrieved_exceptions.take()
    assert len(reports) == 1
    assert reports[0].startswith(marker)


def test_a_retrieved_exception_is_not_reported() -> None:
    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(RuntimeError("seen"))
        with pytest.raises(RuntimeError):
            await fut

    with UnretrievedExceptions() as detector:
        asyncio.run(main())
        assert detector.collect() == []


def test_the_detector_is_removed_from_the_logger_on_exit(
    fail_on_unretrieved_exceptions: UnretrievedExceptions,
) -> None:
    with UnretrievedExceptions() as detector:
        pass
    _leak_a_future()
    gc.collect()
    assert detector.reports == []
    assert len(fail_on_unretrieved_exceptions.take()) == 1  # the suite's detector, still attached


CONFTEST = "from daz.testing.leaks import fail_on_unretrieved_exceptions  # noqa: F401\n"
LEAKING_TESTS = '''
import asyncio

def test_leaks_a_future():
    async def main():
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(RuntimeError("lost outcome"))
    asyncio.run(main())

def test_clean():
    asyncio.run(asyncio.sleep(0))
'''


def test_the_fixture_fails_exactly_the_test_that_leaked(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_leaky=LEAKING_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_leaks_a_future*",
        "*asyncio exception(s) were never retrieved during this test*",
        "*RuntimeError('lost outcome')*",
    ])


def test_a_subprocess_log_is_scanned_for_the_same_reports() -> None:
    log = "\n".join([
        '{"event": "room.state_changed", "level": "info"}',
        "Future exception was never retrieved",
        "future: <Future finished exception=Kicked('kicked: Too many connections')>",
        '{"event": "Task exception was never retrieved", "level": "error"}',
    ])
    found = unretrieved_in(log)
    assert found == [log.splitlines()[1], log.splitlines()[3]]
    assert unretrieved_in('{"event": "app.started"}') == []
