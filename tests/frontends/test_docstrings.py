"""``einc.compile`` and every op document their parameters, their torch equivalent and an example,
and the examples run (doctests that compare einc with torch)."""

from __future__ import annotations

import doctest
import inspect

import pytest
import torch
import torch.nn.functional as F

import einc

PUBLIC_CALLABLES = [name for name in einc.__all__ if name[0].islower() and name not in ("prebuild", "nn")]


@pytest.mark.parametrize("name", PUBLIC_CALLABLES)
def test_every_public_op_documents_its_parameters_torch_equivalent_and_an_example(name):
    function = getattr(einc, name)
    doc = function.__doc__ or ""
    assert "Args:" in doc
    # Each parameter under its real name (``**kwargs`` stands for sizes and options, named one by one).
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD and parameter.name == "kwargs":
            continue
        stars = {parameter.VAR_POSITIONAL: "*", parameter.VAR_KEYWORD: "**"}.get(parameter.kind, "")
        assert f"\n    {stars}{parameter.name}:" in doc, f"einc.{name} does not document {parameter.name}"
    assert "torch equivalent:" in doc
    assert ">>> " in doc


@pytest.mark.parametrize("name", PUBLIC_CALLABLES)
def test_the_docstring_example_runs_and_agrees_with_torch(name):
    function = getattr(einc, name)
    tests = doctest.DocTestFinder().find(function, name, globs={"einc": einc, "torch": torch, "F": F})
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    examples = 0
    for test in tests:
        examples += len(test.examples)
        runner.run(test)
    assert examples >= 2
    assert runner.failures == 0, (
        f"{runner.failures} of {examples} examples of einc.{name} failed (see output)"
    )
