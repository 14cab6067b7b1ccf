"""settle_long_lived: freezes the heap and keeps freezing after full passes (in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests import ROOT


def run_script(body: str) -> str:
    """Run `body` in a fresh interpreter: gc.freeze would otherwise leak into every test."""
    script = "import gc\nfrom bot.ops import heap\n" + textwrap.dedent(body) + "\nprint('done')\n"
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
        # Some interpreters freeze objects of their own at start-up (3.12: 375), so count
        # from here rather than from zero.
        before = gc.get_freeze_count()
        kept = [[n] for n in range(1000)]
        heap.settle_long_lived()
        assert gc.get_freeze_count() >= before + len(kept), (gc.get_freeze_count(), before)
        walked = {id(o) for o in gc.get_objects()}
        assert not any(id(o) in walked for o in kept), "a settled object is still walked"
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
        # Twice the young passes a full one needs (from this interpreter's own thresholds:
        # 3.13's young one is 2,000, 3.11's 700), yet far from a quarter of the store: a
        # full pass deferred by the store's size would walk all of these at once.
        young, middle, _ = gc.get_threshold()
        kept = [[n] for n in range(young * (middle + 1) * (heap.FULL_PASS_EVERY + 1) * 2)]
        assert len(kept) < len(store) // 4, len(kept)
        assert full, f"no full pass while {len(kept):,} containers were promoted"
        """
    )


def test_after_settling_a_full_pass_follows_every_few_middle_ones() -> None:
    run_script(
        """
        store = [[n] for n in range(200_000)]
        heap.settle_long_lived()
        passes = []
        gc.callbacks.append(
            lambda phase, info: phase == "stop"
            and info["generation"] > 0
            and passes.append(str(info["generation"]))
        )
        # Enough allocation for about 25 middle passes at this interpreter's thresholds.
        young, middle, _ = gc.get_threshold()
        kept = [[n] for n in range(young * (middle + 1) * 25)]  # promoted: what full passes walk
        seen = "".join(passes)  # e.g. "1111211112...": 1 a middle pass, 2 a full one
        assert seen.count("1") >= 20, seen
        # a full pass follows at most FULL_PASS_EVERY + 1 middle ones, never CPython's 11
        longest = max(len(run) for run in seen.split("2"))
        assert longest <= heap.FULL_PASS_EVERY + 1, seen
        assert seen.count("2") >= seen.count("1") // (heap.FULL_PASS_EVERY + 1) - 1, seen
        """
    )


def test_release_free_memory_hands_freed_heap_pages_back() -> None:
    run_script(
        """
        def rss_mib():
            with open("/proc/self/status") as status:
                line = next(s for s in status if s.startswith("VmRSS"))
            return int(line.split()[1]) / 1024

        # 128 MiB in blocks below glibc's mmap threshold, so they live on the heap; the
        # last one stays, so that free() cannot give the space back by shrinking the top.
        blocks = [bytes([n % 251]) * (64 * 1024) for n in range(2048)]
        kept = blocks.pop()
        del blocks
        before = rss_mib()
        assert heap.release_free_memory()
        after = rss_mib()
        assert before - after > 64, (before, after)
        assert kept[0] == 2047 % 251
        """
    )


def test_every_pass_is_reported_with_its_generation_and_duration() -> None:
    run_script(
        """
        passes = []
        heap.settle_long_lived(lambda generation, seconds: passes.append((generation, seconds)))
        garbage = [[n] for n in range(50_000)]  # its allocation runs young passes itself
        assert passes and all(0 < s < 10 for _, s in passes), passes
        del passes[:]
        gc.collect(0)
        gc.collect(2)
        assert [g for g, _ in passes] == [0, 2], passes
        assert all(0 < s < 10 for _, s in passes), passes
        """
    )
