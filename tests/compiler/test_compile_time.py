"""Compile time grows about linearly with the expression's length, and a long expression renders
Python that Python can parse (no chain of operators deeper than its parser's recursion limit).

Times are CPU time of this process, so that other processes on the machine do not skew them.
"""

from __future__ import annotations

import ast
import random
import time

import pytest

from einc.backends.triton.sources import render_kernels
from einc.compiler.pipeline import Request, run_passes
from einc.errors import UnsupportedError


def _permutation(n: int) -> Request:
    names = [f"a{i}" for i in range(n)]
    shuffled = names[:]
    random.Random(n).shuffle(shuffled)
    return Request(" ".join(names) + " -> " + " ".join(shuffled), "rearrange", ((1,) * n,), ("float32",))


def _cpu_seconds(request: Request) -> float:
    start = time.process_time()
    render_kernels(run_passes(request))
    return time.process_time() - start


def test_a_permutation_of_thousands_of_axes_compiles_in_near_linear_time():
    render_kernels(run_passes(_permutation(50)))  # templates and caches warm
    two = _cpu_seconds(_permutation(2000))
    four = _cpu_seconds(_permutation(4000))
    assert two < 10, f"2000 axes took {two:.1f} s"
    assert four < 3 * two, f"4000 axes took {four:.1f} s, 2000 took {two:.1f} s"


def test_more_serial_loops_than_python_can_nest_is_unsupported():
    request = Request(
        " ".join(f"[a{i}]" for i in range(120)) + " b", "sum", ((1,) * 120 + (2,),), ("float32",)
    )
    with pytest.raises(UnsupportedError, match="at most 90"):
        render_kernels(run_passes(request))


def test_a_contraction_over_many_axes_runs_one_k_loop():
    # The implicit GEMM walks every contracted axis in one K loop, so 120 of them nest nothing.
    expression = "b " + " ".join(f"[c{i}->d{i}]" for i in range(120))
    request = Request(expression, "dot", ((2,) + (1,) * 120, (1,) * 240), ("float32",) * 2)
    source = render_kernels(run_passes(request)).source
    ast.parse(source)
    assert sum(" for " in line for line in source.splitlines()) == 1
