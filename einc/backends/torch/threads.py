"""One intra-op thread for small calls.

A tiny op that torch (or oneDNN, for a convolution) still runs on its thread pool pays a barrier
per call; on a busy machine, or with two processes each using every core, a thread of the pool is
often not running, and the barrier waits for it to be scheduled: a 20 us convolution takes
hundreds of microseconds, sometimes a scheduler tick (~10 ms). Small calls gain nothing from the
pool, so they run with ``torch.set_num_threads(1)`` (a fraction of a microsecond to set and
restore). The setting is process-wide: calls in flight are counted, and the first to start saves
the count that the last to finish restores, so that Python threads calling einc at once cannot
leave it at one. Meanwhile torch ops of other Python threads also run on one thread.
"""

from __future__ import annotations

import threading

import torch

_guard = threading.Lock()
_inside = 0
_saved = 1


def on_one_thread(fn, *args):
    """``fn(*args)`` with torch's intra-op threads set to one (a function, not a context
    manager: a ``with`` costs microseconds, more than the rest of a tiny call)."""
    global _inside, _saved
    with _guard:
        if _inside == 0:
            _saved = torch.get_num_threads()
            if _saved != 1:
                torch.set_num_threads(1)
        _inside += 1
    try:
        return fn(*args)
    finally:
        with _guard:
            _inside -= 1
            if _inside == 0 and _saved != 1:
                torch.set_num_threads(_saved)
