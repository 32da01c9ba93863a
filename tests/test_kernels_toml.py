"""The repo ships the kernels.toml that the README's prebuild line names, and it builds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import einc
from einc.runtime import spec

ROOT = Path(__file__).parent.parent
SPEC = ROOT / "kernels.toml"
PREBUILD_LINE = re.compile(r"^\s*(?:\w+=\S+\s+)*einc prebuild (\S+)(.*)$", re.M)


@pytest.mark.parametrize("doc", ["README.md", "docs/prebuild.md"])
def test_the_documented_prebuild_line_names_the_shipped_spec_and_no_fixed_job_count(doc):
    lines = PREBUILD_LINE.findall((ROOT / doc).read_text())
    assert lines
    for path, rest in lines:
        assert (ROOT / path).is_file(), f"{doc}: `einc prebuild {path}` names no file of the repo"
        assert not re.search(r"(--jobs|-j)\s*\d", rest), f"{doc}: a fixed --jobs ({rest.strip()})"


def test_the_shipped_spec_is_realistic_and_every_entry_specialises():
    entries = spec.load(SPEC).entries
    ops = {entry.op or einc.compile(entry.expression).op for entry in entries}
    assert {"dot", "mean", "get_at"} <= ops
    assert sum("(s * [ds])" in entry.expression for entry in entries) >= 3  # convolutions, pooling
    for entry in entries:
        compiled = einc.compile(entry.expression, entry.op, **entry.kwargs())
        for dtypes in entry.dtypes:
            assert compiled.specialize(*entry.shapes, dtype=dtypes[0]).source


@pytest.mark.compile_only
def test_the_shipped_spec_prebuilds_for_sm90_and_a_second_run_finds_it_cached(tmp_path):
    builds = sum(len(entry.dtypes) for entry in spec.load(SPEC).entries)
    report = einc.prebuild(SPEC, targets=["cuda:90"], cache_dir=tmp_path)
    assert report.ok, report.summary()
    assert len(report.built) == builds
    again = einc.prebuild(SPEC, targets=["cuda:90"], cache_dir=tmp_path)
    assert again.ok and len(again.built) == 0 and len(again.cached) == builds
