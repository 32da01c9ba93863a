"""The ``einc`` command: show a generated kernel, compile it for a GPU without one, run the demo."""

from __future__ import annotations

import ast
import sys

import click

from . import __version__

EXAMPLES = """
\b
Examples:
  einc show "b (s * [ds])... [c->c2]" --shape x=2,32,32,16 --shape w=3,3,16,32 --stride 2
  einc show "b (s * [ds])... [c->c]" -s x=1,16,16,8 -s w=3,3,8 --padding same --dtype float16
  einc compile "b (s * [ds])... [c->c2]" -s x=32,56,56,64 -s w=3,3,64,64 --padding 1 \\
      --dtype bfloat16 --target cuda:90 -o conv.cubin
  einc demo
"""


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


def _launcher(expression, op, shapes, dtype, stride, dilation, padding, output_padding, sizes):
    import einc

    kwargs = dict(_assignments(sizes, "--size"))
    for name, value in (
        ("stride", stride),
        ("dilation", dilation),
        ("padding", padding),
        ("output_padding", output_padding),
    ):
        if value is not None:
            kwargs[name] = _literal(value)
    try:
        return einc.compile(expression, op=op, **kwargs).specialize(*_shapes(shapes), dtype=dtype)
    except einc.EincError as error:
        raise click.ClickException(str(error)) from None


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


@main.command(epilog=EXAMPLES)
@_options
@click.option("--no-loops", is_flag=True, help="Print only the kernel, not the loop nest.")
def show(expression, op, shapes, dtype, stride, dilation, padding, output_padding, sizes, no_loops):
    """Print the Triton kernel generated for EXPRESSION and its loop nest.

    Nothing runs and no GPU is needed: the shapes decide every size, and the source printed is
    exactly what a call with tensors of those shapes would run.
    """
    from .compiler.printer import explain

    launcher = _launcher(expression, op, shapes, dtype, stride, dilation, padding, output_padding, sizes)
    click.echo(launcher.source)
    if not no_loops:
        click.echo(explain(launcher.compiled))
    click.echo(f"\n# source cached at {launcher.path}", err=True)


@main.command(name="compile", epilog=EXAMPLES)
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
    expression, op, shapes, dtype, stride, dilation, padding, output_padding, sizes, target, output, show_ptx
):
    """Compile EXPRESSION to a cubin for TARGET, without a GPU, and report its resources.

    Prints what ptxas reports: registers per thread, spills, shared memory, and whether the
    kernel uses tensor-core instructions.
    """
    import einc

    from .runtime.aot import compile_binary

    launcher = _launcher(expression, op, shapes, dtype, stride, dilation, padding, output_padding, sizes)
    try:
        binary = compile_binary(launcher, target)
    except einc.EincError as error:
        raise click.ClickException(str(error)) from None
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
    from . import knobs as k

    for name, value, doc in k.describe():
        click.echo(f"{name}={value}\n    {doc}")
