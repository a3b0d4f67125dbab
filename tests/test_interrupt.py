"""A signal that lands where Python ignores exceptions (a weakref callback, `__del__`: importlib's module
locks use one) still stops the run, and prints no traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import os, signal, sys, time, weakref
    from openai_batches.load import interrupt

    interrupt.install_signal_handlers()

    class Thing:
        pass

    def callback(_ref):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside the callback
        for _ in range(1000):
            pass

    thing = Thing()
    ref = weakref.ref(thing, callback)
    try:
        del thing
        for _ in range(200):  # two seconds: the stop arrives within milliseconds
            time.sleep(0.01)
        print("ran on")
    except interrupt.Terminated:
        print("stopped")
    """
)


def test_a_signal_inside_a_callback_python_ignores_still_stops_the_run_without_a_traceback() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=30)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip() == "stopped", (done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr
