"""Quiet by default: third-party output (paddle2onnx and Polygraphy banners, Optuna's trial log) is hidden
unless the command runs with --verbose; our own progress and errors are unaffected. Paddle's C++ log is set to
errors only when lwnas is imported (lwnas/__init__.py); GLOG_minloglevel=0 in the environment shows it."""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager

verbose = False


def configure(be_verbose: bool):
    global verbose
    verbose = be_verbose


@contextmanager
def third_party_output():
    """Within the block, what is written to file descriptors 1 and 2 (Python or C++) goes to a temporary file,
    shown only with --verbose or when the block raises."""
    if verbose:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 1)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        _restore(saved)


def _restore(saved: list[int]):
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in zip((1, 2), saved):
        os.dup2(copy, fd)
        os.close(copy)
    saved.clear()
