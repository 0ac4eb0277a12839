"""The background Prefetcher: fills the cache for a queue and yields to the foreground."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest


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
    time.sleep(0.3)
    assert pf.done == [] and pf.pending == [1, 2]
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
        t = threading.Thread(target=background)
        t.start()
        time.sleep(0.3)
        assert not finished.is_set() and len(progress) == 1  # stopped at the first yield point
    assert finished.wait(30)
    t.join()
    assert len(progress) > 5 and "bg" in seg.cache


@pytest.mark.parametrize("progress, expect_foreground_encodes", [(0, 1), (10**6, 0)])
def test_foreground_waits_for_or_takes_over_the_same_image(tiny_segmenter, progress, expect_foreground_encodes):
    """set_image of an image being prefetched: take the job over if it just began, else wait for it."""
    from segment_anything import SamPredictor

    from tests.models.conftest import random_image

    seg = tiny_segmenter()
    image = random_image(seed=21)
    hold = threading.Event()
    result = []

    def check():
        hold.wait(10)  # the background job sits at its first yield point until released

    t = threading.Thread(target=lambda: result.append(seg.precompute(image, key="same", background=True,
                                                                     check=check)))
    t.start()
    while "same" not in seg._jobs:
        time.sleep(0.01)
    seg._jobs["same"].points = progress  # pretend it is just starting / nearly done
    releaser = threading.Timer(0.3, hold.set)
    releaser.start()
    before = seg.encoder_calls
    seg.set_image(image, key="same")
    t.join()
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
    while not seg._jobs[key].wanted:
        time.sleep(0.01)
    proceed.set()  # the encoder now meets the pause
    assert done.wait(30), "set_image waited forever on a paused prefetch"
    assert pf.done == [3] or pf.wait(5) and pf.done == [3]
    pf.stop()
