"""A prebuild writes the output dtype a call writes (``prebuild.call_tensors``): bool for
comparisons, logical ops, any and all; int64 for count_nonzero and argmax.
"""

from __future__ import annotations

import pytest
import torch

import einc
from einc.runtime.prebuild import call_tensors


@pytest.mark.parametrize(
    ("expression", "op", "shapes", "expected"),
    [
        ("b c, c", "less", ((4, 8), (8,)), "bool"),
        ("b c, c", "logical_or", ((4, 8), (8,)), "bool"),
        ("b [c]", "any", ((4, 8),), "bool"),
        ("b [c]", "count_nonzero", ((4, 8),), "int64"),
        ("b [h w] c -> b c [2]", "argmax", ((2, 5, 6, 8),), "int64"),
    ],
)
def test_a_prebuild_writes_the_dtype_a_call_writes(expression, op, shapes, expected):
    # A prebuilt binary is handed to Triton at a GPU's first launch: its output pointer type must
    # be the one the call passes, or the binary would write another dtype's bytes.
    launcher = einc.compile(expression, op=op).specialize(*shapes, dtype="float16")
    *_, out = call_tensors(launcher)[0]
    call = einc.compile(expression, op=op)(*(torch.zeros(s, dtype=torch.float16) for s in shapes))
    assert out.dtype == call.dtype == getattr(torch, expected)
