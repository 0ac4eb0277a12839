"""The background Prefetcher: fills the cache for a queue and yields to the foreground."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

TIMEOUT = 30.0  # seconds; only reached when the code under test is broken


def wait_until(condition, what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``condition()`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting until {what}")
        time.sleep(0.005)


def stack(thread: threading.Thread) -> list[str]:
    """The function names on ``thread``'s Python stack, innermost first."""
    frame, names = sys._current_frames().get(thread.ident), []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names


def run_in_thread(fn) -> tuple[threading.Thread, list]:
    """Start ``fn`` in a daemon thread; the list receives its result, or the exception it raised."""
    out: list = []

    def body():
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out


def test_prefetcher_fills_the_cache(seg_project, tiny_segmenter):
    import torch

    from labkit.models import Prefetcher, project_image

    seg = tiny_segmenter()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)  # the worker uses 1; this thread and later threads keep 2
    try:
        with Prefetcher(seg, seg_project, [2, 3, 4]) as pf:
            assert pf.wait(timeout=60)
        assert torch.get_num_threads() == 2
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start()
        t.join()
        assert seen == [2]
    finally:
        torch.set_num_threads(threads_before)
    assert not pf.running
    assert pf.done == [2, 3, 4] and pf.skipped == [] and pf.failed == {}
    hashes = seg_project.images()["sha256"]
    assert sorted(seg.cache.keys()) == sorted(hashes[[2, 3, 4]])
    # the labeler then shows those images without running the encoder
    calls = seg.encoder_calls
    for i in (2, 3, 4):
        image, key = project_image(seg_project, i)
        seg.set_image(image, key=key)
        seg.predict(box=[5, 5, 40, 30])
    assert seg.encoder_calls == calls
    # a second prefetcher over the same queue finds everything cached
    with Prefetcher(seg, seg_project, [2, 3, 4]) as pf2:
        assert pf2.wait(timeout=60)
    assert pf2.done == [] and pf2.skipped == [2, 3, 4]


def test_failures_do_not_stop_the_queue(seg_project, tiny_segmenter):
    from labkit.models import Prefetcher

    seg_project.image_path(3).unlink()
    seg = tiny_segmenter()
    with Prefetcher(seg, seg_project, [3, 4]) as pf:
        assert pf.wait(timeout=60)
    assert pf.done == [4] and list(pf.failed) == [3] and "missing" in pf.failed[3]
    with pytest.raises(ValueError, match=r"not in the project: \[42\]"):
        Prefetcher(seg, seg_project, [1, 42])


def test_pause_resume_and_set_queue(seg_project, tiny_segmenter):
    from labkit.models import Prefetcher

    seg = tiny_segmenter()
    pf = Prefetcher(seg, seg_project, [])
    pf.pause()
    pf.start()
    pf.set_queue([1, 2])
    # held: the worker saw the queue and waits for the pause instead of taking an image
    assert pf.wait_held(timeout=TIMEOUT), f"the paused prefetcher did not hold: {pf!r}"
    assert pf.done == [] and pf.pending == [1, 2] and pf.current is None
    pf.set_queue([4])
    pf.resume()
    assert pf.wait(timeout=60)
    assert pf.done == [4]
    pf.stop()
    assert not pf.running


def test_background_encoder_waits_for_foreground_work(tiny_segmenter):
    """While a prompt is being served, the background encoder holds at its next yield point."""
    from tests.models.conftest import random_image

    seg = tiny_segmenter()
    progress = []
    finished = threading.Event()

    def background():
        seg.precompute(random_image(seed=20), key="bg", background=True, check=lambda: progress.append(1))
        finished.set()

    with seg.gate.foreground():
        t = threading.Thread(target=background, daemon=True)
        t.start()
        # parked: blocked in the gate's wait at a yield point (or, if the gate let it through, done)
        wait_until(lambda: finished.is_set() or stack(t)[:1] == ["wait"] and "_hook" in stack(t),
                   "the background encoder reached a yield point")
        assert not finished.is_set() and len(progress) == 1  # stopped at the first yield point
    assert finished.wait(TIMEOUT)
    t.join()
    assert len(progress) > 5 and "bg" in seg.cache


@pytest.mark.parametrize("progress, expect_foreground_encodes", [(0, 1), (10**6, 0)])
def test_foreground_waits_for_or_takes_over_the_same_image(tiny_segmenter, progress, expect_foreground_encodes):
    """set_image of an image being prefetched: take the job over if it just began, else wait for it."""
    from segment_anything import SamPredictor

    from tests.models.conftest import random_image

    seg = tiny_segmenter()
    image = random_image(seed=21)
    started, hold = threading.Event(), threading.Event()

    def check():
        started.set()
        hold.wait(TIMEOUT)  # the background job sits at its first yield point until released

    t, result = run_in_thread(lambda: seg.precompute(image, key="same", background=True, check=check))
    assert started.wait(TIMEOUT), "the background encoding never reached its first yield point"
    job = seg._jobs["same"]
    job.points = progress  # pretend it is just starting / nearly done
    before = seg.encoder_calls
    fg, fg_result = run_in_thread(lambda: seg.set_image(image, key="same"))
    # release the background job only once the foreground has chosen: take it over, or wait for it
    wait_until(lambda: job.cancel or job.wanted, "set_image took the job over or waited for it")
    hold.set()
    fg.join(TIMEOUT)
    t.join(TIMEOUT)
    assert not fg.is_alive() and not t.is_alive(), "set_image or the background job never finished"
    assert fg_result == [None]
    foreground_calls = seg.encoder_calls - before - (1 if result == [True] else 0)
    assert foreground_calls == expect_foreground_encodes
    assert result == ([False] if expect_foreground_encodes else [True])
    ref = SamPredictor(seg.sam)
    ref.set_image(image)
    np.testing.assert_array_equal(seg.predict(box=[5, 5, 50, 40])[0], ref.predict(box=np.array([5, 5, 50, 40]))[0])


def test_grabcut_has_nothing_to_prefetch(seg_project):
    from labkit.models import Prefetcher, load_segmenter

    with Prefetcher(load_segmenter("grabcut"), seg_project, [1, 2]) as pf:
        assert pf.wait(timeout=10)
    assert pf.skipped == [1, 2]


def test_waiting_for_a_paused_prefetch_does_not_deadlock(seg_project, tiny_segmenter):
    """The foreground waits for a nearly finished prefetch of its image even if the Prefetcher is paused."""
    from labkit.models import Prefetcher, project_image

    seg = tiny_segmenter()
    pf = Prefetcher(seg, seg_project, [])
    image, key = project_image(seg_project, 3)
    entered, proceed = threading.Event(), threading.Event()
    original = pf._check

    def check():
        if not entered.is_set():
            entered.set()
            proceed.wait(30)  # hold the encoder at its first yield point
        original()

    pf._check = check
    pf.start()
    pf.set_queue([3])
    assert entered.wait(30)
    pf.pause()
    seg._jobs[key].points = 10**6  # nearly done: the foreground will wait, not take over
    done = threading.Event()
    threading.Thread(target=lambda: (seg.set_image(image, key=key), done.set()), daemon=True).start()
    job = seg._jobs[key]
    wait_until(lambda: job.wanted, "set_image waits for the prefetch of its image")
    proceed.set()  # the encoder now meets the pause
    assert done.wait(30), "set_image waited forever on a paused prefetch"
    assert pf.done == [3] or pf.wait(5) and pf.done == [3]
    pf.stop()
