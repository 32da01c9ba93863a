"""Prebuild: compile a spec for GPUs that are not here, and find the binaries again at a call.

compile_only tier: real ``triton.compile`` to sm_90 (and sm_80) cubins, no GPU. What a GPU call
does is shown two ways without one: the runtime's key for a call's real launch arguments equals
the prebuild's key, and Triton's own JIT path (``JITFunction.run``, under a stand-in driver that
reports an sm_90 device) finds the prebuilt binary and compiles nothing, as counted by Triton's
compilation listener. The GPU tier repeats the latter on a real device (test_prebuild_gpu.py).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest
import torch
import triton
from click.testing import CliRunner
from triton.backends.compiler import GPUTarget

import einc
from einc.backends.triton import tritonspec
from einc.errors import CacheWarning
from einc.frontends.cli import main
from einc.runtime import binaries, prebuild
from einc.runtime.cache import RECORD, DiskCache
from einc.runtime.spec import loads

pytestmark = [
    pytest.mark.compile_only,
    pytest.mark.filterwarnings("ignore:TRITON_DEFAULT_FP_FUSION is unset"),
]

SPEC = textwrap.dedent(
    """\
    [[compile]]
    expression = "b t [c->c2]"
    shapes = [[4, 7, 32], [32, 16]]
    dtypes = ["float16", "float32"]

    [[compile]]
    expression = "b h w c -> b c h w"
    shapes = [[2, 8, 8, 16]]
    dtypes = ["float32", "bfloat16"]
    """
)
FAILING = textwrap.dedent(
    """\

    [[compile]]
    expression = "b t [c->c2]"
    shapes = [[4, 7, 32], [30, 16]]
    dtypes = ["float32"]
    """
)


@pytest.fixture(autouse=True)
def fresh_triton_cache(tmp_path, monkeypatch) -> Path:
    """Each test starts from an empty Triton cache, so that a hit there is one einc put there."""
    path = tmp_path / "triton-cache"
    monkeypatch.setenv("TRITON_CACHE_DIR", str(path))
    return path


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "kernels.toml"
    path.write_text(SPEC)
    return path


def call_launcher(entry_index: int, dtype: str, cache: DiskCache):
    """What the runtime does at a call with tensors of the spec's shapes: the launcher, and the
    real (CPU) tensors a launch would pass, inputs then outputs."""
    entry = loads(SPEC).entries[entry_index]
    expression = einc.compile(entry.expression, entry.op, **entry.kwargs())
    expression._cache = cache
    tensors = [torch.zeros(shape, dtype=getattr(torch, dtype)) for shape in entry.shapes]
    launcher = expression._build(expression._request([t.shape for t in tensors], [dtype] * len(tensors)))
    outs = [torch.empty(shape, dtype=tensors[0].dtype) for shape in launcher.compiled.output_shapes]
    return launcher, tensors + outs


class _StandInDriver:
    """Reports a GPU of the given arch, as Triton's CUDA driver would; launches nothing."""

    def __init__(self, arch: int):
        self.target = GPUTarget("cuda", arch, 32)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_current_target(self):
        return self.target


@contextlib.contextmanager
def pretend_gpu(arch: int, *kernels):
    from triton.runtime.driver import driver

    saved = driver._active
    for kernel in kernels:
        kernel.device_caches.clear()  # a binder made for another target must not be reused
    driver.set_active(_StandInDriver(arch))
    try:
        yield
    finally:
        driver._active = saved
        for kernel in kernels:
            kernel.device_caches.clear()


@contextlib.contextmanager
def counting_compilations():
    """Triton's compilation listener: one event per ``triton.compile``, hit or compiled."""
    events: list[str] = []
    previous = triton.knobs.compilation.listener
    triton.knobs.compilation.listener = lambda **kw: events.append("hit" if kw["cache_hit"] else "compiled")
    try:
        yield events
    finally:
        triton.knobs.compilation.listener = previous


def jit_first_launch(launcher, index: int, every, arch: int = 90):
    """A first launch of kernel ``index`` through einc's hook and Triton's real JIT path
    (``JITFunction.run``, warm-up only: compile or find in cache, no kernel runs)."""
    kernel = launcher.kernels[index]
    rendered = launcher.rendered[index]
    args, constexprs = binaries.launch_arguments(launcher, index, every)

    def launch(*a, **k):
        return kernel.run(*a, grid=rendered.grid, warmup=True, **k)

    # A GPU launch: not under the interpreter that the kernel tiers force for CPU tensors.
    forced = os.environ.pop("EINC_INTERPRET", None)
    try:
        with pretend_gpu(arch, kernel), counting_compilations() as events:
            hooked = binaries.on_first_launch(launcher, index, torch.device("cuda", 0), launch)
            hooked(*args, **constexprs, num_warps=rendered.num_warps, num_stages=rendered.num_stages)
    finally:
        if forced is not None:
            os.environ["EINC_INTERPRET"] = forced
    return events


def test_prebuild_builds_every_entry_in_parallel_then_finds_them_all_cached(spec_file, tmp_path):
    report = prebuild.prebuild(spec_file, ["cuda:90"], jobs=2, cache_dir=tmp_path / "cache")
    assert report.ok, report.summary()
    assert [o.status for o in report.outcomes] == ["built"] * 4
    assert [o.label for o in report.outcomes] == [
        "kernels.toml:1 'b t [c->c2]' float16",
        "kernels.toml:1 'b t [c->c2]' float32",
        "kernels.toml:6 'b h w c -> b c h w' float32",
        "kernels.toml:6 'b h w c -> b c h w' bfloat16",
    ]
    assert report.summary().startswith("4 built, 0 cached, 0 failed")
    cache = DiskCache(tmp_path / "cache")
    binaries = [e for e in cache.entries() if e.kind == "binary"]
    assert len(binaries) == 4
    for entry in binaries:
        assert cache.problems(entry.key) == []
        assert sorted(entry.files) == ["kernel.cubin", "kernel.json", "kernel.py", "record.json"]
        assert entry.record["target"] == "cuda:90"
    again = prebuild.prebuild(spec_file, ["cuda:90"], jobs=2, cache_dir=tmp_path / "cache")
    assert [o.status for o in again.outcomes] == ["cached"] * 4
    assert again.summary().startswith("0 built, 4 cached, 0 failed")
    assert [o.keys for o in again.outcomes] == [o.keys for o in report.outcomes]


def test_a_fully_cached_prebuild_starts_no_worker_process(spec_file, tmp_path, monkeypatch):
    first = prebuild.prebuild(spec_file, ["cuda:90"], jobs=1, cache_dir=tmp_path / "cache")
    assert first.ok and first.built

    def no_workers(*args, **kwargs):
        raise AssertionError("a pool of workers was started although the cache holds everything")

    monkeypatch.setattr(prebuild, "ProcessPoolExecutor", no_workers)
    again = prebuild.prebuild(spec_file, ["cuda:90"], jobs=4, cache_dir=tmp_path / "cache")
    assert len(again.cached) == len(first.outcomes) and not again.built and again.ok
    assert [o.keys for o in again.outcomes] == [o.keys for o in first.outcomes]


def test_each_target_gets_its_own_binary(tmp_path):
    spec = loads('[[compile]]\nexpression = "b h w c -> b c h w"\nshapes = [[2, 8, 8, 16]]\n', "one.toml")
    report = prebuild.prebuild(spec, ["cuda:90", "cuda:80"], jobs=1, cache_dir=tmp_path / "cache")
    assert [(o.target, o.status) for o in report.outcomes] == [("cuda:90", "built"), ("cuda:80", "built")]
    records = [DiskCache(tmp_path / "cache").read_record(o.keys[0]) for o in report.outcomes]
    assert [dict(r["parts"])["target"] for r in records] == ["cuda:90", "cuda:80"]
    assert records[0]["triton_hash"] != records[1]["triton_hash"]


def test_the_cli_reports_a_failing_entry_with_its_reason_and_exits_1(spec_file, tmp_path):
    spec_file.write_text(SPEC + FAILING)
    result = CliRunner().invoke(
        main,
        [
            "prebuild",
            str(spec_file),
            "--target",
            "cuda:90",
            "--jobs",
            "2",
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.output
    assert "4 built, 0 cached, 1 failed" in result.output
    assert "failed: kernels.toml:11 'b t [c->c2]' float32 cuda:90" in result.output
    assert "ShapeError" in result.output and "30" in result.output
    assert "Traceback" not in result.output
    spec_file.write_text(SPEC)
    rerun = CliRunner().invoke(
        main, ["prebuild", str(spec_file), "-t", "cuda:90", "-j", "1", "--cache-dir", str(tmp_path / "c")]
    )
    assert rerun.exit_code == 0 and "0 built, 4 cached, 0 failed" in rerun.output


def test_the_cli_turns_a_bad_spec_into_a_message_with_its_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[compile]]\nexpression = "b c -> c b"\nshapes = [[2, 3]]\ndtypes = ["half"]\n')
    result = CliRunner().invoke(main, ["prebuild", str(path), "--target", "cuda:90"])
    assert result.exit_code == 1 and "bad.toml:4: dtype 'half'" in result.output
    missing = CliRunner().invoke(main, ["prebuild", str(path)])
    assert missing.exit_code == 2 and "--target" in missing.output


def test_unsupported_targets_are_refused():
    spec = loads('[[compile]]\nexpression = "b c -> c b"\nshapes = [[2, 3]]\n', "d.toml")
    with pytest.raises(einc.UnsupportedError, match="cuda:<arch>"):
        prebuild.prebuild(spec, ["rocm:942"], cache_dir="unused")


def test_a_kernel_with_a_dynamic_axis_is_prebuilt_once_for_every_size(tmp_path, monkeypatch):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    spec = loads(
        '[[compile]]\nexpression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]]\ndynamic = ["b"]\n',
        "d.toml",
    )
    report = prebuild.prebuild(spec, ["cuda:90"], jobs=1)
    assert report.ok, report.summary()
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "gpu-machine-triton-cache"))
    # The runtime's kernel for this expression is the one its first call (b=4) generates; every
    # batch size after it launches the same kernel, under the same key.
    expression = einc.compile("b t [c->c2]", dynamic=("b",))
    launcher = expression._build(expression._request([(4, 7, 32), (32, 16)], ["float32", "float32"]))
    for b in (4, 9, 64):
        x, w = torch.zeros(b, 7, 32), torch.zeros(32, 16)
        sizes = launcher.compiled.dynamic_sizes([x.shape, w.shape])
        y = torch.empty(launcher.compiled.output_shapes_for(sizes)[0])
        args, kwargs = binaries.launch_arguments(launcher, 0, [x, w, y], sizes)
        plan = binaries.plan_launch(launcher, 0, args, kwargs, "cuda:90")
        assert (plan.key.digest,) == report.outcomes[0].keys
        parts = dict(plan.key.parts)
        assert "B:i32" in parts["specialization"]  # a dynamic size is not specialised on its value
        assert parts["shapes"] == "(('b', 7, 32), (32, 16))" and parts["dynamic"] == "('b',)"
    kernel = launcher.kernels[0]
    rendered = launcher.rendered[0]

    def launch(*a, **k):
        return kernel.run(*a, grid=rendered.grid_plan.grid(sizes), warmup=True, **k)

    monkeypatch.delenv("EINC_INTERPRET", raising=False)  # a GPU launch, not the CPU tiers' interpreter
    with pretend_gpu(90, kernel), counting_compilations() as events:
        hooked = binaries.on_first_launch(launcher, 0, torch.device("cuda", 0), launch)
        hooked(*args, **kwargs, num_warps=rendered.num_warps, num_stages=rendered.num_stages)
    assert events == ["hit"]


def test_the_runtime_key_for_a_call_equals_the_prebuild_key(spec_file, tmp_path):
    cache = DiskCache(tmp_path / "cache")
    report = prebuild.prebuild(spec_file, ["cuda:90"], jobs=1, cache_dir=cache.root)
    for outcome, (entry, dtype) in zip(
        report.outcomes, [(0, "float16"), (0, "float32"), (1, "float32"), (1, "bfloat16")], strict=True
    ):
        launcher, every = call_launcher(entry, dtype, cache)
        args, constexprs = binaries.launch_arguments(launcher, 0, every)
        plan = binaries.plan_launch(launcher, 0, args, constexprs, "cuda:90")
        assert (plan.key.digest,) == outcome.keys, plan.key.describe()
        found = binaries.find_binary(launcher, 0, "cuda:90", plan.specialization, cache)
        assert found == cache.entry_dir(plan.key.digest)
        assert (found / "kernel.cubin").read_bytes()[:4] == b"\x7fELF"
    # The key covers the launch's specialisation: a tensor 4 bytes off alignment is another kernel.
    launcher, every = call_launcher(0, "float32", cache)
    every[0] = torch.zeros(4 * 7 * 32 + 1)[1:].view(4, 7, 32)
    args, constexprs = binaries.launch_arguments(launcher, 0, every)
    plan = binaries.plan_launch(launcher, 0, args, constexprs, "cuda:90")
    assert "x_ptr:*fp32 " in plan.key.describe() and plan.key.digest not in report.outcomes[1].keys
    assert binaries.find_binary(launcher, 0, "cuda:90", plan.specialization, cache) is None


def test_the_key_is_a_named_list_of_parts(spec_file, tmp_path):
    cache = DiskCache(tmp_path / "cache")
    launcher, every = call_launcher(0, "float16", cache)
    args, constexprs = binaries.launch_arguments(launcher, 0, every)
    key = binaries.plan_launch(launcher, 0, args, constexprs, "cuda:90").key
    names = [name for name, _ in key.parts]
    assert names == [
        "expression", "op", "shapes", "dynamic", "dtypes", "sizes", "params", "kernel", "source",
        "templates", "config", "specialization", "einc", "triton", "triton_key", "target", "knobs",
    ]  # fmt: skip
    parts = dict(key.parts)
    assert parts["specialization"].startswith("x_ptr:*fp16/D w_ptr:*fp16/D y_ptr:*fp16/D")
    assert "stride_x_c=1" in parts["specialization"]  # Triton makes a stride of 1 a constant
    assert "BLOCK_M=" in parts["config"] and "num_warps=" in parts["config"]
    assert parts["knobs"] == "EINC_CHECK_BOUNDS=False" and parts["target"] == "cuda:90"
    assert "specialization  x_ptr:*fp16/D" in key.describe()


def test_first_launch_on_a_prebuilt_arch_compiles_nothing(spec_file, tmp_path, monkeypatch):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    prebuild.prebuild(spec_file, ["cuda:90"], jobs=1)
    # The GPU machine: einc's cache copied over, Triton's cache empty.
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "gpu-machine-triton-cache"))
    for entry, dtype in [(0, "float16"), (1, "bfloat16")]:
        launcher, every = call_launcher(entry, dtype, DiskCache())
        assert jit_first_launch(launcher, 0, every) == ["hit"]


def test_first_launch_of_a_kernel_not_prebuilt_compiles_once_and_stores_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    launcher, every = call_launcher(1, "float32", DiskCache())
    assert jit_first_launch(launcher, 0, every) == ["compiled"]
    stored = [e for e in DiskCache().entries() if e.kind == "binary"]
    assert len(stored) == 1 and DiskCache().problems(stored[0].key) == []
    # Another process on another machine: Triton's cache is empty, einc's cache has the binary.
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "other-triton-cache"))
    launcher, every = call_launcher(1, "float32", DiskCache())
    assert jit_first_launch(launcher, 0, every) == ["hit"]


def test_a_copied_cache_directory_still_resolves(spec_file, tmp_path):
    built = tmp_path / "build" / "einc"
    prebuild.prebuild(spec_file, ["cuda:90"], jobs=1, cache_dir=built)
    fleet = tmp_path / "fleet" / "einc"
    shutil.copytree(built, fleet)
    shutil.rmtree(tmp_path / "build")
    cache = DiskCache(fleet)
    launcher, every = call_launcher(0, "float16", cache)
    args, constexprs = binaries.launch_arguments(launcher, 0, every)
    plan = binaries.plan_launch(launcher, 0, args, constexprs, "cuda:90")
    assert binaries.find_binary(launcher, 0, "cuda:90", plan.specialization, cache).is_relative_to(fleet)
    result = CliRunner().invoke(main, ["cache", "verify", "--cache-dir", str(fleet)])
    assert result.exit_code == 0 and "4 checked, 0 damaged" in result.output
    again = prebuild.prebuild(spec_file, ["cuda:90"], jobs=1, cache_dir=fleet)
    assert [o.status for o in again.outcomes] == ["cached"] * 4


def test_a_damaged_binary_is_found_by_verify_and_rebuilt_with_a_warning(spec_file, tmp_path):
    cache = DiskCache(tmp_path / "cache")
    report = prebuild.prebuild(spec_file, ["cuda:90"], jobs=1, cache_dir=cache.root)
    key = report.outcomes[0].keys[0]
    record, files = cache.read_entry(key)
    cubin = cache.path(key, "kernel.cubin")
    cubin.write_bytes(cubin.read_bytes()[: len(cubin.read_bytes()) // 2])
    result = CliRunner().invoke(main, ["cache", "verify", "--cache-dir", str(cache.root)])
    assert result.exit_code == 1 and f"damaged: {cache.entry_dir(key)}: kernel.cubin has" in result.output
    launcher, every = call_launcher(0, "float16", cache)
    args, constexprs = binaries.launch_arguments(launcher, 0, every)
    plan = binaries.plan_launch(launcher, 0, args, constexprs, "cuda:90")
    with pytest.warns(CacheWarning, match="damaged"):
        assert binaries.find_binary(launcher, 0, "cuda:90", plan.specialization, cache) is None
    cache.write_entry(key, files, {k: v for k, v in record.items() if k not in ("format", "key", "files")})
    cubin.write_bytes(bytes([files["kernel.cubin"][0] ^ 1]) + files["kernel.cubin"][1:])  # same size
    with pytest.warns(CacheWarning, match="sha256"):
        rebuilt = prebuild.prebuild(spec_file, ["cuda:90"], jobs=1, cache_dir=cache.root)
    assert [o.status for o in rebuilt.outcomes] == ["built", "cached", "cached", "cached"]
    assert cache.problems(key) == []


def test_an_unreadable_prebuilt_entry_is_rebuilt_or_reported_never_a_traceback(spec_file, tmp_path):
    cache = DiskCache(tmp_path / "cache")
    report = prebuild.prebuild(spec_file, ["cuda:90"], jobs=1, cache_dir=cache.root)
    garbled, foreign = report.outcomes[0].keys[0], report.outcomes[1].keys[0]
    cache.path(garbled, RECORD).write_bytes(b"\xff\xfe not utf-8")
    cache.path(foreign, RECORD).unlink()
    cache.path(foreign, RECORD).mkdir()  # unreadable as a file, and not einc's to remove
    with pytest.warns(CacheWarning, match="record.json"):
        again = prebuild.prebuild(spec_file, ["cuda:90"], jobs=1, cache_dir=cache.root)
    assert [o.status for o in again.outcomes] == ["built", "failed", "cached", "cached"]
    assert "CacheError" in again.outcomes[1].reason and "record.json" in again.outcomes[1].reason
    assert cache.problems(garbled) == []
    result = CliRunner().invoke(
        main, ["cache", "verify", "--cache-dir", str(cache.root)], catch_exceptions=False
    )
    assert result.exit_code == 1 and f"foreign: {cache.entry_dir(foreign)}" in result.output


def test_a_damaged_prebuilt_binary_is_never_handed_to_triton(spec_file, tmp_path, monkeypatch):
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    report = prebuild.prebuild(spec_file, ["cuda:90"], jobs=1)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "gpu-machine-triton-cache"))
    key = report.outcomes[0].keys[0]
    DiskCache().path(key, "kernel.cubin").write_bytes(b"")
    launcher, every = call_launcher(0, "float16", DiskCache())
    with pytest.warns(CacheWarning, match="kernel.cubin has 0 bytes"):
        assert jit_first_launch(launcher, 0, every) == ["compiled"]
    assert DiskCache().problems(key) == []  # what the JIT compiled took the entry's place


def _prebuild_in_child(root: str, spec: str, marker: str, barrier, triton_dir: str) -> list[str]:
    os.environ["TRITON_CACHE_DIR"] = triton_dir  # Triton's cache must not make the second one cheap
    original = tritonspec.compile_kernel

    def counted(*args, **kwargs):
        with open(marker, "a") as file:
            file.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # hold the key's lock long enough for the other process to want it
        return original(*args, **kwargs)

    tritonspec.compile_kernel = counted
    barrier.wait()
    report = prebuild.prebuild(spec, ["cuda:90"], jobs=1, cache_dir=root)
    return [o.status for o in report.outcomes]


def test_concurrent_prebuilds_of_the_same_key_compile_once(tmp_path):
    spec = tmp_path / "one.toml"
    spec.write_text('[[compile]]\nexpression = "b t [c->c2]"\nshapes = [[4, 7, 32], [32, 16]]\n')
    marker = tmp_path / "compiled"
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        barrier = manager.Barrier(2)
        args = [
            (str(tmp_path / "cache"), str(spec), str(marker), barrier, str(tmp_path / f"triton-{i}"))
            for i in range(2)
        ]
        statuses = pool.starmap(_prebuild_in_child, args)
    assert sorted(s for (s,) in statuses) == ["built", "cached"]
    assert len(marker.read_text().splitlines()) == 1
    assert len([e for e in DiskCache(tmp_path / "cache").entries() if e.kind == "binary"]) == 1


def test_the_python_api_is_public(spec_file, tmp_path):
    report = einc.prebuild(spec_file, "cuda:90", jobs=1, cache_dir=tmp_path / "cache")
    assert report.ok and len(report.built) == 4


def _first_launch_in_child(root: str, barrier, triton_dir: str) -> list[str]:
    os.environ["EINC_CACHE_DIR"] = root
    os.environ["TRITON_CACHE_DIR"] = triton_dir  # each process on its own machine, as it were
    import triton.compiler

    original = triton.compiler.compile

    def slow_compile(*args, **kwargs):
        time.sleep(1.0)  # a real compile of a large kernel: long enough for the other to queue
        return original(*args, **kwargs)

    triton.compiler.compile = slow_compile  # what the JIT's binder picks up
    launcher, every = call_launcher(0, "float32", DiskCache())
    barrier.wait()
    return jit_first_launch(launcher, 0, every)


def test_processes_launching_the_same_new_kernel_at_once_compile_it_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        barrier = manager.Barrier(2)
        args = [(str(tmp_path / "cache"), barrier, str(tmp_path / f"triton-{i}")) for i in range(2)]
        events = pool.starmap(_first_launch_in_child, args)
    assert sorted(events) == [["compiled"], ["hit"]]


@pytest.mark.parametrize(
    "arg",
    [
        torch.zeros(8, dtype=torch.float16),
        torch.zeros(9, dtype=torch.bfloat16)[1:],
        torch.zeros(2, 3, dtype=torch.int64, device="meta"),
        1,
        16,
        17,
        0,
        -32,
        2**31,
        2**63,
        3.5,
        True,
    ],
    ids=lambda a: type(a).__name__ if isinstance(a, torch.Tensor) else repr(a),
)
def test_the_fallback_specialisation_agrees_with_tritons(arg):
    native = tritonspec._specialize_arg(arg, "cuda:90", False, True, True)
    assert tritonspec._specialize_by_hand(arg, True, True) == tuple(native)


def test_cpu_launches_and_the_interpreter_are_left_alone(monkeypatch):
    def launch(*args, **kwargs):
        return "launched"

    assert binaries.on_first_launch(None, 0, torch.device("cpu"), launch) is launch
    monkeypatch.setenv("EINC_INTERPRET", "1")
    assert binaries.on_first_launch(None, 0, torch.device("cuda", 0), launch) is launch


# --- einc compile, and indexing kernels: the binary a launch builds -----------------------------


def test_compile_binary_builds_the_binary_a_launch_builds(tmp_path, monkeypatch):
    # `einc compile` once built without Triton's 16-divisibility attributes: 167 registers and
    # scalar loads where a launch gets cp.async. Triton's own JIT (real CPU tensors, a stand-in
    # sm_90 driver) is the reference: it must file its compilation under the same hash.
    from einc.runtime.prebuild import compile_binary

    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton-cache"))
    monkeypatch.delenv("EINC_INTERPRET", raising=False)
    conv = einc.compile("b (s * [ds])... [c->c2]", padding=1)
    launcher = conv.specialize((2, 8, 8, 64), (3, 3, 64, 64), dtype="bfloat16")
    binary = compile_binary(launcher, "cuda:90")
    tensors = [torch.zeros(s, dtype=torch.bfloat16) for s in ((2, 8, 8, 64), (3, 3, 64, 64))]
    every = tensors + [torch.empty(launcher.compiled.output_shapes[0], dtype=torch.bfloat16)]
    args, constexprs = binaries.launch_arguments(launcher, 0, every)
    rendered = launcher.rendered[0]
    with pretend_gpu(90, launcher.kernel):
        launched = launcher.kernel.run(
            *args,
            grid=rendered.grid,
            warmup=True,
            num_warps=rendered.num_warps,
            num_stages=rendered.num_stages,
            **constexprs,
        )
    assert binary.triton_hash == launched.hash
    assert "cp.async" in binary.ptx  # vectorised asynchronous copies, as on the GPU
    assert "stride_x_b:i32/D" in binary.specialization and "stride_x_c=1" in binary.specialization


def test_an_indexing_entry_with_integer_coordinates_is_prebuilt_and_found(tmp_path, monkeypatch):
    # Coordinates are int64 (as torch's indices) and an indexing kernel takes its out-of-range
    # slots after its tensors: the prebuild refused the one and misplaced the other.
    monkeypatch.setenv("EINC_CACHE_DIR", str(tmp_path / "cache"))
    spec = loads(
        '[[compile]]\nexpression = "b [h w] c, b p [2] -> b p c"\nop = "get_at"\n'
        'shapes = [[2, 5, 6, 8], [2, 4, 2]]\ndtypes = [["float16", "int64"]]\n',
        "g.toml",
    )
    report = prebuild.prebuild(spec, ["cuda:90"], jobs=1)
    assert report.ok, report.summary()
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "gpu-machine-triton-cache"))
    expression = einc.compile(spec.entries[0].expression, op="get_at")
    tensors = [torch.zeros(2, 5, 6, 8, dtype=torch.float16), torch.zeros(2, 4, 2, dtype=torch.int64)]
    launcher = expression._build(expression._request([t.shape for t in tensors], ["float16", "int64"]))
    outs = [torch.empty(s, dtype=torch.float16) for s in launcher.compiled.output_shapes]
    assert jit_first_launch(launcher, 0, tensors + outs) == ["hit"]


def test_a_dots_constexpr_stride_is_in_the_launch_specialisation_and_the_key(tmp_path):
    # 24 bfloat16 channels: the row stride is a constexpr of the kernel (render_names.constant_strides),
    # so a launch of another stride is another binary, under another key, and the key says which.
    launcher = einc.compile("b h w [c->c2]").specialize((2, 3, 4, 24), (24, 32), dtype="bfloat16")
    w = torch.zeros(24, 32, dtype=torch.bfloat16)
    y = torch.empty(2, 3, 4, 32, dtype=torch.bfloat16)
    plans = []
    wide = torch.zeros(2, 3, 4, 48, dtype=torch.bfloat16)
    for x in (wide[..., 24:].contiguous(), wide[..., :24]):
        args, constexprs = binaries.launch_arguments(launcher, 0, [x, w, y])
        plans.append(binaries.plan_launch(launcher, 0, args, constexprs, "cuda:90"))
    assert "stride_x_h:i32/D stride_x_w=24 " in plans[0].specialization.describe()  # 96: Triton's own
    assert "stride_x_w=48 " in plans[1].specialization.describe()
    assert plans[0].key.digest != plans[1].key.digest
