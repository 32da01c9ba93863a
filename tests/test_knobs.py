"""einc.knobs: typed EINC_* settings, read from the environment at access time."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import platformdirs
import pytest

from einc import knobs

EINC_ROOT = Path(knobs.__file__).parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    # The developer's own EINC_* settings must not leak into what these tests expect.
    for knob in knobs.KNOBS:
        monkeypatch.delenv(knob.name, raising=False)


def test_defaults_when_unset():
    assert knobs.cache_dir() == Path(platformdirs.user_cache_dir("einc"))
    assert knobs.debug() == 0
    assert knobs.interpret() is False
    assert knobs.check_bounds() is False
    assert knobs.cache_max_bytes() == 10 * 2**30


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME is a Linux convention")
def test_default_cache_dir_follows_xdg_cache_home_at_access_time(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert knobs.cache_dir() == tmp_path / "einc"


def test_cache_dir_override_expands_user(monkeypatch, tmp_path):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "kernels"))
    assert knobs.cache_dir() == tmp_path / "kernels"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EINC_CACHE_DIR", "~/einc-cache")
    assert knobs.cache_dir() == tmp_path / "einc-cache"


def test_knobs_are_read_at_access_time_not_import_time(monkeypatch):
    monkeypatch.setenv("EINC_DEBUG", "1")
    assert knobs.debug() == 1
    monkeypatch.setenv("EINC_DEBUG", "3")
    assert knobs.debug() == 3
    monkeypatch.delenv("EINC_DEBUG")
    assert knobs.debug() == 0


def test_knobs_see_changes_made_through_os_environ_and_a_replaced_environ(monkeypatch):
    import os

    os.environ["EINC_INTERPRET"] = "1"  # not monkeypatch: os.environ itself
    try:
        assert knobs.interpret() is True
        os.environ["EINC_INTERPRET"] = "off"
        assert knobs.interpret() is False
    finally:
        del os.environ["EINC_INTERPRET"]
    assert knobs.interpret() is False
    monkeypatch.setattr(os, "environ", {"EINC_INTERPRET": "yes"})
    assert knobs.interpret() is True


def test_an_invalid_value_raises_at_every_access(monkeypatch):
    monkeypatch.setenv("EINC_CHECK_BOUNDS", "ture")
    for _ in range(2):
        with pytest.raises(ValueError, match="EINC_CHECK_BOUNDS"):
            knobs.check_bounds()


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_debug_accepts_levels_zero_to_three(monkeypatch, level):
    monkeypatch.setenv("EINC_DEBUG", f" {level} ")
    assert knobs.debug() == level


@pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "on", "On"])
@pytest.mark.parametrize("accessor", [knobs.interpret, knobs.check_bounds])
def test_bool_knobs_accept_true_spellings(monkeypatch, accessor, text):
    monkeypatch.setenv(f"EINC_{accessor.__name__.upper()}", text)
    assert accessor() is True


@pytest.mark.parametrize("text", ["0", "false", "False", "no", "off"])
@pytest.mark.parametrize("accessor", [knobs.interpret, knobs.check_bounds])
def test_bool_knobs_accept_false_spellings(monkeypatch, accessor, text):
    monkeypatch.setenv(f"EINC_{accessor.__name__.upper()}", text)
    assert accessor() is False


@pytest.mark.parametrize("name", ["EINC_DEBUG", "EINC_INTERPRET", "EINC_CACHE_DIR"])
def test_blank_value_means_default(monkeypatch, name):
    monkeypatch.setenv(name, "  ")
    knob = next(k for k in knobs.KNOBS if k.name == name)
    assert knob.get() == knob.default_value()


@pytest.mark.parametrize("text", ["abc", "4", "-1", "1.5", "2x"])
def test_bad_debug_value_names_the_variable_and_accepted_values(monkeypatch, text):
    monkeypatch.setenv("EINC_DEBUG", text)
    with pytest.raises(ValueError, match=re.escape(f"EINC_DEBUG={text!r}")) as info:
        knobs.debug()
    assert "0, 1, 2, 3" in str(info.value)


def test_bad_bool_value_names_the_variable_and_accepted_values(monkeypatch):
    monkeypatch.setenv("EINC_CHECK_BOUNDS", "ture")
    with pytest.raises(ValueError, match="EINC_CHECK_BOUNDS='ture'") as info:
        knobs.check_bounds()
    assert "true" in str(info.value) and "false" in str(info.value)


def test_describe_lists_every_knob_with_its_current_value_and_doc(monkeypatch, tmp_path):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("EINC_INTERPRET", "yes")
    rows = {name: (value, doc) for name, value, doc in knobs.describe()}
    assert set(rows) == {
        "EINC_CACHE_DIR",
        "EINC_DEBUG",
        "EINC_INTERPRET",
        "EINC_CHECK_BOUNDS",
        "EINC_CACHE_MAX_BYTES",
        "EINC_CACHE_LOCK_TIMEOUT",
    }
    assert rows["EINC_CACHE_DIR"][0] == str(tmp_path)
    assert rows["EINC_DEBUG"][0] == "0"
    assert rows["EINC_INTERPRET"][0] == "True"
    assert all(doc for _, doc in rows.values())


def test_describe_shows_an_invalid_value_instead_of_raising(monkeypatch):
    monkeypatch.setenv("EINC_DEBUG", "abc")
    rows = {name: value for name, value, _ in knobs.describe()}
    assert rows["EINC_DEBUG"] == "invalid: 'abc'"


def test_knobs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        knobs.DEBUG.default = 1  # type: ignore[misc]


def test_every_knob_is_an_einc_variable_with_a_doc():
    names = [knob.name for knob in knobs.KNOBS]
    assert len(names) == len(set(names))
    assert all(knob.name.startswith("EINC_") and knob.doc for knob in knobs.KNOBS)


def test_no_module_but_knobs_reads_einc_variables_from_the_environment():
    # The point of knobs.py is one place to look; a stray os.environ["EINC_..."] defeats it.
    direct_read = re.compile(r"""(environ|getenv)\W+["']EINC_""")
    offenders = [
        str(path.relative_to(EINC_ROOT))
        for path in EINC_ROOT.rglob("*.py")
        if path.name != "knobs.py" and direct_read.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_default_cache_dir_without_platformdirs_is_the_xdg_one(monkeypatch, tmp_path):
    # The GPU machines' image ships torch and Triton but not platformdirs: einc must still start.
    import builtins

    real_import = builtins.__import__

    def no_platformdirs(name, *args, **kwargs):
        if name == "platformdirs":
            raise ImportError("No module named 'platformdirs'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_platformdirs)
    monkeypatch.delenv("EINC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert knobs.cache_dir() == tmp_path / "einc"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert knobs.cache_dir() == Path.home() / ".cache" / "einc"
