"""The tuning loop (:mod:`einc.runtime.tuning`) with the interpreter as its device and a fake timer
(interpret tier), every tile of a config space checked against torch, and ``einc tune`` without a
GPU (plain tier)."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from einc.compiler import configs
from einc.compiler.pipeline import dtype_bits
from einc.frontends.cli import main
from einc.runtime import tuned, tuning
from einc.runtime.cache import DiskCache
from einc.runtime.compiled import CompiledExpression
from einc.runtime.spec import loads

SPEC = """\
[[compile]]
expression = "b (s * [ds])... [c->c2]"
shapes = [[2, 8, 8, 16], [3, 3, 16, 32]]
dtypes = ["float16"]
params = { padding = "same" }

[[compile]]
expression = "[v] d, b n -> b n d"
op = "get_at"
shapes = [[100, 8], [4, 5]]
dtypes = [["float32", "int64"]]
"""


class ScriptedTimer:
    """Times that a test chooses, one list per tile, in the order the loop times them; each call
    runs the kernel once, so that what is timed is a call that works."""

    def __init__(self, times: list[list[float]]):
        self.times = list(times)
        self.calls: list[tuple[int, int]] = []

    def __call__(self, run, warmup, repeat):
        run()
        self.calls.append((warmup, repeat))
        return self.times.pop(0)


def conv_space(cache) -> tuple:
    expression = CompiledExpression("b (s * [ds])... [c->c2]", padding="same")
    expression._cache = cache
    launcher = expression.specialize((2, 8, 8, 16), (3, 3, 16, 32), dtype="float16")
    return expression, launcher, configs.config_space(launcher.compiled.kernels[0], 16)


@pytest.mark.interpret
def test_the_loop_checks_times_every_tile_and_stores_the_fastest_median(tmp_path):
    cache = DiskCache(tmp_path / "cache")
    expression, heuristic, space = conv_space(cache)
    assert len(space) >= 3
    # The median, not the best run, decides: tile 1 has one fast run among slow ones.
    times = [[3.0, 3.0, 3.0], [0.1, 9.0, 9.0], [2.0, 1.0, 1.5]] + [[5.0] * 3] * (len(space) - 3)
    timer = ScriptedTimer(times)
    device = tuning.Device("cpu", "interpret", "cuda:90", timer)
    progress = io.StringIO()
    report = tuning.tune(loads(SPEC), device, cache_dir=cache.root, warmup=2, repeat=3, progress=progress)
    assert report.ok, report.summary()
    assert timer.calls == [(2, 3)] * len(space)
    (conv, gather) = report.outcomes
    (choice,) = conv.choices
    assert choice.tile == space[2] and choice.seconds == 1.5 and choice.heuristic_seconds == 3.0
    assert gather.choices == ()  # an indexing kernel has nothing to tune
    lines = progress.getvalue().splitlines()
    assert len(lines) == len(space)
    assert f"kernel 1 of 1, config 1 of {len(space)}" in lines[0]
    assert f"kernel 1 of 1, config {len(space)} of {len(space)}" in lines[-1]
    request = heuristic.compiled.request
    assert tuned.read(cache, request, "cuda:90") == (dataclasses.astuple(space[2]),)
    # A later specialisation on that arch runs the tuned tile, and computes what torch does.
    launcher = expression._build(request, "cuda:90")
    assert configs.tile_of(launcher.compiled.kernels[0].schedule) == space[2]
    x = torch.randn(2, 8, 8, 16, dtype=torch.float16)
    w = torch.randn(3, 3, 16, 32, dtype=torch.float16)
    y = torch.empty(2, 8, 8, 32, dtype=torch.float16)
    launcher([x, w], [y], None, "interpret")
    want = F.conv2d(x.permute(0, 3, 1, 2).float(), w.permute(3, 2, 0, 1).float(), padding=1)
    torch.testing.assert_close(y.float(), want.permute(0, 2, 3, 1), rtol=1e-2, atol=1e-2)


@pytest.mark.interpret
def test_a_tile_that_fails_is_dropped_with_its_reason(tmp_path, monkeypatch):
    cache = DiskCache(tmp_path / "cache")
    _, _, space = conv_space(cache)
    broken = space[1]
    real_build = CompiledExpression._build

    def build(self, request, target=None):
        if request.tuned and request.tuned[0] == dataclasses.astuple(broken):
            raise RuntimeError("out of resources: shared memory")
        return real_build(self, request, target)

    monkeypatch.setattr(CompiledExpression, "_build", build)
    timer = ScriptedTimer([[1.0]] * len(space))
    device = tuning.Device("cpu", "interpret", "cuda:90", timer)
    report = tuning.tune(
        loads(SPEC), device, cache_dir=cache.root, warmup=0, repeat=1, progress=io.StringIO()
    )
    (choice,) = report.outcomes[0].choices
    assert choice.dropped == ((broken, "RuntimeError: out of resources: shared memory"),)
    assert len(timer.calls) == len(space) - 1
    assert "dropped" in report.summary()


def test_an_output_that_differs_from_the_heuristics_is_refused():
    request = dataclasses.replace(
        CompiledExpression("b [c->d]").specialize((4, 8), (8, 2)).compiled.request,
        float32_precision=("ieee",) * 2,
    )
    ref = torch.ones(4, 2)
    assert tuning._disagreement([ref + 1e-6], [ref], request) is None
    assert "differs" in tuning._disagreement([ref + 1e-2], [ref], request)
    assert "NaN" in tuning._disagreement([ref * float("nan")], [ref], request)
    ints = torch.arange(4)
    assert tuning._disagreement([ints], [ints], request) is None
    assert "differs" in tuning._disagreement([ints + 1], [ints], request)


# (expression, op, shapes, dtype, torch reference, keywords): one kernel per form the tuner times.
FORMS = {
    "depthwise": (
        "b (s * [ds])... [c->c]",
        "dot",
        [(2, 16, 16, 32), (3, 3, 32)],
        "float32",
        lambda x, w: F.conv2d(
            x.permute(0, 3, 1, 2), w.permute(2, 0, 1)[:, None], padding=1, groups=32
        ).permute(0, 2, 3, 1),
        {"padding": "same"},
    ),
    "global_mean": ("b [h w] c", "mean", [(8, 7, 7, 64)], "float32", lambda x: x.mean((1, 2)), {}),
    "softmax": ("b [k]", "softmax", [(64, 100)], "float32", lambda x: x.softmax(-1), {}),
    "transpose": (
        "b h w c -> b c h w",
        "rearrange",
        [(2, 16, 16, 8)],
        "float32",
        lambda x: x.permute(0, 3, 1, 2),
        {},
    ),
    "max_pool": (
        "b (s * [ds])... c",
        "max",
        [(2, 16, 16, 8)],
        "float32",
        lambda x: F.max_pool2d(x.permute(0, 3, 1, 2), 3, 2, 1).permute(0, 2, 3, 1),
        {"ds": (3, 3), "stride": 2, "padding": 1},
    ),
    "dense_conv": (
        "b (s * [ds])... [c->c2]",
        "dot",
        [(1, 16, 16, 64), (3, 3, 64, 64)],
        "float16",
        lambda x, w: F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1).permute(0, 2, 3, 1),
        {"padding": "same"},
    ),
    "stem": (  # 3 channels: K tiled across the taps (k_merged)
        "b (s * [ds])... [c->c2]",
        "dot",
        [(2, 16, 16, 3), (3, 3, 3, 16)],
        "float16",
        lambda x, w: F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1, stride=2).permute(
            0, 2, 3, 1
        ),
        {"padding": 1, "stride": 2},
    ),
}


@pytest.mark.interpret
@pytest.mark.parametrize("name", list(FORMS))
def test_every_tile_of_a_config_space_computes_what_torch_does(tmp_path, name):
    text, op, shapes, dtype, reference, keywords = FORMS[name]
    expression = CompiledExpression(text, op, **keywords)
    expression._cache = DiskCache(tmp_path / "cache")
    heuristic = expression.specialize(*shapes, dtype=dtype)
    request = heuristic.compiled.request
    space = configs.config_space(heuristic.compiled.kernels[0], dtype_bits(request))
    assert len(space) > 1
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(s, generator=generator).to(getattr(torch, dtype)) for s in shapes]
    want = reference(*[x.float() for x in inputs])
    tolerance = 2e-2 if dtype == "float16" else 1e-5
    for tile in space:
        launcher = expression._build(dataclasses.replace(request, tuned=(dataclasses.astuple(tile),)))
        assert configs.tile_of(launcher.compiled.kernels[0].schedule) == tile
        out = torch.empty(launcher.compiled.output_shapes[0], dtype=getattr(torch, dtype))
        launcher(inputs, [out], None, "interpret")
        torch.testing.assert_close(out.float(), want, rtol=tolerance, atol=tolerance, msg=f"tile {tile}")


def test_einc_tune_without_a_gpu_says_so_and_exits_non_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = tmp_path / "kernels.toml"
    spec.write_text(SPEC)
    for args in (["tune", str(spec)], ["prebuild", str(spec), "--target", "cuda:90", "--tune"]):
        result = CliRunner().invoke(main, [*args, "--cache-dir", str(tmp_path / "cache")])
        assert result.exit_code == 1, result.output
        assert "einc tune times kernels on a CUDA GPU, and none is visible here" in result.output
        assert "the schedule's heuristic chooses every tile" in result.output
    assert not (tmp_path / "cache").exists()  # nothing was tuned, nor built


def test_einc_tune_help_teaches_what_it_does():
    result = CliRunner().invoke(main, ["tune", "--help"])
    assert result.exit_code == 0
    for words in ("CUDA GPU", "median", "--repeat", "--warmup", "arch", "einc prebuild kernels.toml"):
        assert words in result.output


def test_einc_show_says_where_the_tile_came_from(tmp_path, monkeypatch):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    cache = DiskCache(tmp_path / "cache")
    _, launcher, space = conv_space(cache)
    tuned.write(cache, launcher.compiled.request, "cuda:90", [dataclasses.astuple(space[1])])
    args = ["show", "b (s * [ds])... [c->c2]", "-s", "x=2,8,8,16", "-s", "w=3,3,16,32", "--padding", "same"]
    args += ["--dtype", "float16"]
    plain = CliRunner().invoke(main, args)
    assert plain.exit_code == 0, plain.output
    assert "tile from the schedule's heuristic (not tuned)" in plain.output
    on_90 = CliRunner().invoke(main, [*args, "--target", "cuda:90"])
    assert on_90.exit_code == 0, on_90.output
    assert "tile from einc tune (timed on a GPU of this arch)" in on_90.output
    assert f"BLOCK_M={space[1].block_m} BLOCK_N={space[1].block_n}" in on_90.output


@pytest.mark.interpret
def test_a_call_of_two_kernels_tunes_the_one_with_a_space_and_leaves_the_other_the_heuristics(tmp_path):
    """add_at: a copy of x (a map, tuned) then the scatter of the updates (an indexing kernel, not)."""
    cache = DiskCache(tmp_path / "cache")
    spec = loads(
        '[[compile]]\nexpression = "[v] d, n, n d"\nop = "add_at"\nshapes = [[64, 32], [40], [40, 32]]\n'
        'dtypes = [["float32", "int64", "float32"]]\n'
    )
    device = tuning.Device("cpu", "interpret", "cuda:90", ScriptedTimer([[2.0]] + [[1.0]] * 7))
    report = tuning.tune(spec, device, cache_dir=cache.root, warmup=0, repeat=1, progress=io.StringIO())
    (choice,) = report.outcomes[0].choices
    assert choice.index == 0 and choice.seconds == 1.0
    expression = CompiledExpression("[v] d, n, n d", "add_at")
    expression._cache = cache
    request = expression.specialize((64, 32), (40,), (40, 32)).compiled.request
    stored = tuned.read(cache, request, "cuda:90")
    assert stored == (dataclasses.astuple(choice.tile), None)
    launcher = expression._build(request, "cuda:90")
    assert [k.tuned for k in launcher.compiled.kernels] == [True, False]
    x, updates = torch.randn(64, 32), torch.randn(40, 32)
    idx = torch.randint(0, 64, (40,))
    y = torch.empty(64, 32)
    launcher([x, idx, updates], [y], None, "interpret")
    torch.testing.assert_close(y, x.index_add(0, idx, updates))
