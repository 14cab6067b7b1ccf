"""settle_long_lived: freezes the heap and keeps freezing after full passes (in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(body: str) -> str:
    """Run `body` in a fresh interpreter: gc.freeze would otherwise leak into every test."""
    script = "import gc\nfrom bot import heap\n" + textwrap.dedent(body) + "\nprint('done')\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # the last line proves the script ran to its end rather than exiting early
    assert done.stdout.splitlines()[-1] == "done", done.stdout
    return done.stdout


def test_settling_freezes_what_is_alive() -> None:
    run_script(
        """
        assert gc.get_freeze_count() == 0
        heap.settle_long_lived()
        assert gc.get_freeze_count() > 0, gc.get_freeze_count()
        """
    )


def test_settling_twice_installs_one_callback() -> None:
    run_script(
        """
        heap.settle_long_lived()
        heap.settle_long_lived()
        assert gc.callbacks.count(heap._freeze_after_full_pass) == 1, gc.callbacks
        """
    )


def test_survivors_of_a_full_pass_are_frozen_but_not_of_a_young_one() -> None:
    run_script(
        """
        heap.settle_long_lived()
        settled = gc.get_freeze_count()
        kept = [[n] for n in range(1000)]  # 1001 tracked containers created afterwards
        gc.collect(0)
        # a young pass must not freeze: only what survived a full pass is long-lived
        assert gc.get_freeze_count() == settled, (gc.get_freeze_count(), settled)
        gc.collect()
        assert gc.get_freeze_count() >= settled + len(kept), (gc.get_freeze_count(), settled)
        """
    )


def test_frozen_objects_are_still_freed_by_refcount() -> None:
    run_script(
        """
        import weakref

        class Thing:
            pass

        heap.settle_long_lived()
        thing = Thing()
        ref = weakref.ref(thing)
        gc.collect()
        # frozen: out of the generations the collector walks
        assert not any(o is thing for o in gc.get_objects()), "not frozen"
        del thing
        assert ref() is None, "a frozen object outlived its last reference"
        """
    )


def test_full_passes_resume_at_their_usual_pace_after_settling() -> None:
    run_script(
        """
        store = [[n] for n in range(1_000_000)]  # a loaded store: a million containers
        heap.settle_long_lived()
        full = []
        gc.callbacks.append(lambda phase, info: info["generation"] == 2 and full.append(phase))
        # More than the collector's 10 young passes per full one, but far from a quarter
        # of the store: a full pass deferred that long would walk all of these at once.
        kept = [[n] for n in range(150_000)]
        assert full, "no full pass while 150,000 containers were promoted"
        """
    )


def test_after_settling_a_full_pass_follows_every_few_middle_ones() -> None:
    run_script(
        """
        store = [[n] for n in range(200_000)]
        heap.settle_long_lived()
        passes = {1: 0, 2: 0}
        gc.callbacks.append(
            lambda phase, info: phase == "stop"
            and info["generation"] in passes
            and passes.__setitem__(info["generation"], passes[info["generation"]] + 1)
        )
        kept = [[n] for n in range(300_000)]  # promoted: what the full passes walk
        middle, full = passes[1], passes[2]
        # one full pass per FULL_PASS_EVERY + 1 middle ones (CPython's default: per 11)
        assert middle >= 20, passes
        assert full >= middle // (heap.FULL_PASS_EVERY + 1) - 2, passes
        """
    )
