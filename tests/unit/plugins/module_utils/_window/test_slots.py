"""A source host's window slots: real lock files, a real second process holding one."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._window import slots


HOLDER = """
import sys, time
from ansible_collections.stacklift.migrate.plugins.module_utils._window.slots import window_slot
with window_slot(sys.argv[1], int(sys.argv[2]), 5) as (slot, waited):
    print(slot, flush=True)
    time.sleep(60)
"""


def hold(directory, n):
    """Another call, in its own process, holding one of N slots until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, directory, str(n)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    return proc, int(proc.stdout.readline())


def test_no_limit_takes_no_slot(tmp_path):
    with slots.window_slot(str(tmp_path / "w"), 0, 0) as got:
        assert got == (None, 0.0)
    assert not (tmp_path / "w").exists()


def test_two_slots_let_two_calls_in_and_the_third_waits_until_one_ends_however_it_ends(tmp_path):
    d = str(tmp_path / "w")
    first, slot1 = hold(d, 2)
    second, slot2 = hold(d, 2)
    try:
        assert {slot1, slot2} == {0, 1}
        with pytest.raises(slots.NoSlot, match=r"no window free on this host in 0.3 s \(at most 2 stacks at once"):
            with slots.window_slot(d, 2, 0.3):
                pass
        # The first holder dies without giving its slot back: the kernel does.
        start = time.time()
        first.send_signal(signal.SIGKILL)
        with slots.window_slot(d, 2, 5) as (slot, waited):
            assert slot == slot1 and waited < 2 and time.time() - start < 2
            # held here now: nobody else gets it
            with pytest.raises(slots.NoSlot, match="at most 2 stacks"):
                with slots.window_slot(d, 2, 0.2):
                    pass
        # given back at the end of the block
        with slots.window_slot(d, 2, 0) as (slot, waited):
            assert slot == slot1
    finally:
        for p in (first, second):
            p.kill()
            p.wait()
