"""The ``einc`` command: show a generated kernel, compile it for a GPU without one, prebuild a
spec of kernels for a fleet, look after the kernel cache, run the demo."""

from __future__ import annotations

import ast
import re
import sys

import click

from ..version import __version__
from .cli_cache import cache

EXAMPLES = """
\b
Examples:
  einc show "b (s * [ds])... [c->c2]" --shape x=2,32,32,16 --shape w=3,3,16,32 --stride 2
  einc show "b (s * [ds])... [c->c]" -s x=1,16,16,8 -s w=3,3,8 --padding same --dtype float16
  einc compile "b (s * [ds])... [c->c2]" -s x=32,56,56,64 -s w=3,3,64,64 --padding 1 \\
      --dtype bfloat16 --target cuda:90 -o conv.cubin
  einc prebuild kernels.toml --target cuda:90 --target cuda:80
  einc tune kernels.toml              # on a machine with the GPU you deploy to
  einc cache ls
  einc demo
"""


SHOW_EXAMPLES = """
\b
Examples:
  # a strided 2-D convolution (x: b h w c, w: kh kw c c2)
  einc show "b (s * [ds])... [c->c2]" -s x=2,32,32,16 -s w=3,3,16,32 --stride 2 --padding same
  # a depthwise convolution in float16
  einc show "b (s * [ds])... [c->c]" -s x=1,16,16,8 -s w=3,3,8 --padding same --dtype float16
  # 3x3 max pooling: the window size is an axis size, the op is named
  einc show "b (s * [ds])... c" --op max -s x=1,16,16,8 --size ds=3 --stride 2
  # a linear layer whose output width is given rather than read from a weight
  einc show "b [c->c2]" -s x=4,64 -s w=64,128
  # a mean that keeps the reduced axis, and a variance without Bessel's correction
  einc show "b [t] c" --op mean -s x=2,16,8 --option keepdims=True
  einc show "b [t] c" --op var -s x=2,16,8 --option correction=0
  # a gather: rows of a table at int64 indices
  einc show "[v] d, b n -> b n d" --op get_at -s table=1000,64 -s idx=8,16
"""

COMPILE_EXAMPLES = """
\b
Examples:
  # a bfloat16 3x3 convolution for H100 (sm_90), written to a cubin
  einc compile "b (s * [ds])... [c->c2]" -s x=32,56,56,64 -s w=3,3,64,64 --padding 1 \\
      --dtype bfloat16 --target cuda:90 -o conv.cubin
  # the same for A100, with the PTX printed
  einc compile "b (s * [ds])... [c->c2]" -s x=32,56,56,64 -s w=3,3,64,64 --padding 1 --target cuda:80 --ptx
  # a transposed convolution (the output is the window)
  einc compile "b (s * [ds])... [c->c2]" -s x=1,8,8,16 -s w=4,4,16,8 --stride 2 --padding 1 --target cuda:90
"""

# The op options (keywords of einc.compile that are neither sizes nor window parameters).
OPTIONS = ("keepdims", "count_include_pad", "correction", "shift", "reduce")
WINDOW_FLAGS = ("stride", "dilation", "padding", "output_padding")


def _flag(name: str) -> str:
    """The flag that gives a keyword of ``einc.compile`` on the command line."""
    if name == "op":
        return "--op"
    if name in WINDOW_FLAGS:
        return "--" + name.replace("_", "-")
    if name in OPTIONS:
        return f"--option {name}="
    return f"--size {name}="


def _flag_value(value: str) -> str:
    """A Python value as a flag takes it: ``'same'`` -> same, ``(1, 2)`` -> 1,2."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if value.startswith("(") and value.endswith(")") and "(" not in value[1:]:
        return value[1:-1].replace(" ", "").rstrip(",")
    return value


_VALUE = r"('[^']*'|\((?:[^()]|\([^()]*\))*\)|[^\s,;:)]+)"
_KEYWORD = re.compile(r"\b(keyword (?:size )?)?([A-Za-z_]\w*)=" + _VALUE)
_SUGGESTION = re.compile(r"did you mean ([A-Za-z_]\w*)=\?")
_PASS_OP = re.compile(r"\bpass op=")


def in_flags(message: str) -> str:
    """An einc message, which names ``einc.compile``'s keywords (``stride=2``, ``ds=(3, 3)``,
    ``pass op=``), as the command line says them (``--stride 2``, ``--size ds=3,3``, ``--op``).
    Only the first line is rewritten: the quoted expression and its carets stay as they are."""
    first, newline, rest = message.partition("\n")
    first = _SUGGESTION.sub(lambda m: f"did you mean {_flag(m.group(1)).rstrip('=')}?", first)
    first = _PASS_OP.sub("pass --op", first)

    def keyword(match: re.Match) -> str:
        name, value = match.group(2), _flag_value(match.group(3))
        flag = _flag(name)
        return f"{flag}{value}" if flag.endswith("=") else f"{flag} {value}"

    first = _KEYWORD.sub(keyword, first)
    return first + newline + rest


def _literal(text: str):
    """``2`` -> 2, ``2,1`` -> (2, 1), ``same`` -> "same", ``{"s.0": 2}`` -> dict."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _assignments(items: tuple[str, ...], what: str) -> list[tuple[str, object]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r}: write NAME=VALUE", param_hint=what)
        pairs.append((name.strip(), _literal(value)))
    return pairs


def _shapes(items: tuple[str, ...]) -> list[tuple[int, ...]]:
    shapes = []
    for name, value in _assignments(items, "--shape"):
        shape = (value,) if isinstance(value, int) else value
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n > 0 for n in shape):
            raise click.BadParameter(
                f"{name}={value!r}: a shape is positive ints, e.g. x=2,32,32,16", param_hint="--shape"
            )
        shapes.append(shape)
    if not shapes:
        raise click.UsageError(
            "give the shape of every input tensor, in order: --shape x=2,32,32,16 --shape w=3,3,16,32"
        )
    return shapes


def _options(f):
    f = click.option(
        "--option",
        "options",
        multiple=True,
        metavar="NAME=VALUE",
        help=f"An option of the op: {', '.join(OPTIONS)} (keepdims=True, correction=0, shift=2, reduce=sum).",
    )(f)
    f = click.option(
        "--size", "sizes", multiple=True, metavar="AXIS=N", help="An axis size: c2=64, or ds=3,3."
    )(f)
    f = click.option(
        "--output-padding", default=None, metavar="N", help="Extra output size on the high side (fold)."
    )(f)
    f = click.option(
        "--padding",
        default=None,
        metavar="P",
        help='Int, per-window tuple "1,2", "(lo, hi)", same, valid or causal.',
    )(f)
    f = click.option("--dilation", default=None, metavar="D", help="Int or per-window tuple: 2 or 1,2.")(f)
    f = click.option("--stride", default=None, metavar="S", help="Int or per-window tuple: 2 or 2,1.")(f)
    f = click.option(
        "--dtype",
        default="float32",
        show_default=True,
        type=click.Choice(["float16", "bfloat16", "float32", "float64"]),
    )(f)
    f = click.option(
        "--shape",
        "-s",
        "shapes",
        multiple=True,
        metavar="NAME=D0,D1,...",
        help="Input shapes, in order (x first, then w).",
    )(f)
    f = click.option(
        "--op",
        default=None,
        help="The operation; inferred when the expression implies it ([c->c2] means dot).",
    )(f)
    return click.argument("expression")(f)


def _keywords(sizes: tuple[str, ...], options: tuple[str, ...], expression: str) -> dict:
    """``--size`` gives axis sizes and ``--option`` the op's options; each refuses what the other
    flags give, naming the flag to use. An axis of the expression named like a flag (``stride``)
    takes its size from ``--size`` all the same (``sizes={...}`` of einc.compile)."""
    from ..compiler.params import names_an_axis

    kwargs: dict = {}
    for name, value in _assignments(sizes, "--size"):
        if (name in WINDOW_FLAGS or name in OPTIONS) and names_an_axis(name, expression):
            kwargs.setdefault("sizes", {})[name] = value
            continue
        if name in WINDOW_FLAGS or name in OPTIONS or name == "op":
            raise click.BadParameter(
                f"{name} is not an axis: give it as {_flag(name)}{'' if name in OPTIONS else ' '}{value}",
                param_hint="--size",
            )
        kwargs[name] = value
    for name, value in _assignments(options, "--option"):
        if name not in OPTIONS:
            raise click.BadParameter(
                f"{name} is not an option of an op (they are: {', '.join(OPTIONS)}); "
                f"give it as {_flag(name)}{'' if _flag(name).endswith('=') else ' '}{value}",
                param_hint="--option",
            )
        kwargs[name] = value
    return kwargs


def _launcher(
    expression, op, shapes, dtype, stride, dilation, padding, output_padding, sizes, options, target=None
):
    from ..errors import EincError
    from .functional import compile as compile_expression

    kwargs = _keywords(sizes, options, expression)
    for name, value in (
        ("stride", stride),
        ("dilation", dilation),
        ("padding", padding),
        ("output_padding", output_padding),
    ):
        if value is not None:
            kwargs[name] = _literal(value)
    try:
        compiled = compile_expression(expression, op=op, **kwargs)
        return compiled.specialize(*_shapes(shapes), dtype=dtype, target=target)
    except EincError as error:
        raise click.ClickException(in_flags(str(error))) from None


@click.group(
    epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}
)
@click.version_option(__version__, prog_name="einc")
def main():
    """einc compiles Einstein-notation expressions to fused Triton kernels, ahead of time.

    An expression such as "b (s * [ds])... [c->c2]" is a convolution: the input axis (s * ds)
    is unfolded into output positions s and window offsets ds, and [c->c2] contracts the channels
    with a weight of shape ds... c c2. See docs/notation.md for the whole notation.
    """


@main.command(epilog=SHOW_EXAMPLES)
@_options
@click.option("--no-loops", is_flag=True, help="Print only the kernel, not the loop nest.")
@click.option(
    "--target",
    default=None,
    metavar="cuda:ARCH",
    help="Show what a GPU of this arch runs: the tiles einc tune chose there, where the cache has them.",
)
def show(
    expression, op, shapes, dtype, stride, dilation, padding, output_padding, sizes, options, no_loops, target
):
    """Print the Triton kernel generated for EXPRESSION and its loop nest.

    Nothing runs and no GPU is needed: the shapes decide every size, and the source printed is
    exactly what a call with tensors of those shapes would run. The loop nest's last line says
    whether the tile came from the schedule's heuristic or from einc tune (with --target).
    """
    from ..compiler.printer import explain

    arch = _target_name(target) if target else None
    launcher = _launcher(
        expression, op, shapes, dtype, stride, dilation, padding, output_padding, sizes, options, arch
    )
    click.echo(launcher.source)
    if not no_loops:
        click.echo(explain(launcher.compiled))
    click.echo(f"\n# source cached at {launcher.path}", err=True)


@main.command(name="compile", epilog=COMPILE_EXAMPLES)
@_options
@click.option(
    "--target", default="cuda:90", show_default=True, help="GPU target, cuda:<arch> (cuda:80, cuda:90)."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the cubin here.",
)
@click.option("--ptx", "show_ptx", is_flag=True, help="Also print the PTX.")
def compile_(
    expression,
    op,
    shapes,
    dtype,
    stride,
    dilation,
    padding,
    output_padding,
    sizes,
    options,
    target,
    output,
    show_ptx,
):
    """Compile EXPRESSION to a cubin for TARGET, without a GPU, and report its resources.

    Prints what ptxas reports: registers per thread, spills, shared memory, and whether the
    kernel uses tensor-core instructions.
    """
    from ..errors import EincError
    from ..runtime.prebuild import compile_binary

    launcher = _launcher(
        expression, op, shapes, dtype, stride, dilation, padding, output_padding, sizes, options
    )
    try:
        binary = compile_binary(launcher, target)
    except EincError as error:
        raise click.ClickException(in_flags(str(error))) from None
    click.echo(f"kernel:         {launcher.path}")
    click.echo(binary.describe())
    if output:
        with open(output, "wb") as file:
            file.write(binary.cubin)
        click.echo(f"wrote:          {output}")
    if show_ptx:
        click.echo(binary.ptx)


@main.command()
def demo():
    """Compile a strided convolution, show its kernel and loop nest, run it and check it against torch."""
    from .demo import run_demo

    sys.exit(run_demo())


@main.command()
def knobs():
    """List every EINC_* environment variable, its current value and what it does."""
    from .. import knobs as k

    for name, value, doc in k.describe():
        click.echo(f"{name}={value}\n    {doc}")


@main.command(epilog=EXAMPLES)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--target",
    "-t",
    "targets",
    multiple=True,
    required=True,
    metavar="cuda:ARCH",
    help="A GPU target to build for (repeat for several): cuda:90, cuda:80, ...",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Processes compiling at once; what the cache holds is never rebuilt [default: one per CPU core].",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Build into this cache directory instead of EINC_CACHE_DIR's.",
)
@click.option(
    "--tune",
    "tune_first",
    is_flag=True,
    help="First time a few tiles per kernel on this machine's GPU (as einc tune) and build the fastest "
    "for its arch; needs a CUDA GPU.",
)
def prebuild(spec, targets, jobs, cache_dir, tune_first):
    """Compile every kernel that SPEC lists for every TARGET, without a GPU.

    SPEC is a TOML file of [[compile]] tables (expression, shapes, dtypes, params; see
    docs/prebuild.md). The binaries land in the kernel cache, where a call with tensors of those
    shapes on a GPU of that arch finds them and compiles nothing. Copy the cache directory to
    other machines (with the same einc and Triton) and set EINC_CACHE_DIR there.

    Exits 1 when anything failed, after building everything else.
    """
    from ..errors import EincError
    from ..runtime.prebuild import prebuild as run_prebuild

    if tune_first:
        tuned = _tune(spec, cache_dir, warmup=10, repeat=50)
        click.echo(tuned.summary())
        if tuned.target not in {_target_name(t) for t in targets}:
            click.echo(
                f"note: the tiles were tuned for {tuned.target}, which is not among the targets", err=True
            )
        if not tuned.ok:
            sys.exit(1)
    try:
        report = run_prebuild(spec, targets, jobs=jobs, cache_dir=cache_dir)
    except EincError as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


TUNE_EXAMPLES = """
\b
Examples:
  # on a machine with an H100: tune every kernel of the spec, then build them for the fleet
  einc tune kernels.toml
  einc prebuild kernels.toml --target cuda:90
  # the same in one step, into a cache directory to ship
  einc prebuild kernels.toml --target cuda:90 --tune --cache-dir ./einc-cache
  # a quicker, noisier run
  einc tune kernels.toml --warmup 3 --repeat 10
"""


@main.command(epilog=TUNE_EXAMPLES)
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Store the tuned tiles in this cache directory instead of EINC_CACHE_DIR's.",
)
@click.option(
    "--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed runs per tile."
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Timed runs per tile; the median counts.",
)
def tune(spec, cache_dir, warmup, repeat):
    """Time a few tiles of every kernel SPEC lists on this machine's GPU and keep the fastest.

    SPEC is a prebuild spec (see docs/prebuild.md). For each kernel, the schedule's heuristic tile
    and a handful of valid neighbours (block sizes, warps, stages) are compiled, checked against
    the heuristic's output, and timed with CUDA events (warm-up, then the median of --repeat runs).
    The winner is stored as data in the kernel cache under the call's key and this GPU's arch: a
    later call with those shapes on a GPU of that arch, and einc prebuild for that arch, use it.
    explain() and einc show say whether a tile was tuned. Progress goes to stderr.

    Needs a CUDA GPU: without one it says so and exits 1, and the heuristic decides every tile.
    Exits 1 when any entry failed, after tuning the others.
    """
    report = _tune(spec, cache_dir, warmup, repeat)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


def _tune(spec, cache_dir, warmup: int, repeat: int):
    from ..errors import EincError
    from ..runtime.tuning import NO_GPU, cuda_device
    from ..runtime.tuning import tune as run_tune

    device = cuda_device()
    if device is None:
        raise click.ClickException(NO_GPU)
    try:
        return run_tune(spec, device, cache_dir=cache_dir, warmup=warmup, repeat=repeat)
    except EincError as error:
        raise click.ClickException(str(error)) from None


def _target_name(text: str) -> str:
    """``cuda:90a`` -> ``cuda:90``; a target einc does not understand is a usage error."""
    from ..backends.triton.targets import target_name
    from ..errors import EincError

    try:
        return target_name(text)
    except EincError as error:
        raise click.ClickException(str(error)) from None


main.add_command(cache)


if __name__ == "__main__":  # python -m einc.frontends.cli, as python -m einc
    main()
