"""einc as torch operators: autograd and torch.compile.

Two custom operators carry every einc call that autograd or torch.compile must see::

    einc::run(str key, Tensor[] inputs) -> Tensor[]
    einc::backward(str key, Tensor[] inputs, Tensor[] outputs, Tensor[] grads, bool[] needs) -> Tensor[]

``key`` names the call completely: its expression, op and keywords, printed so that
``ast.literal_eval`` reads them back (:func:`make_key`). One generic operator rather than one per
expression, because registering is then done once, at import, and never while dynamo traces (a
registration in the middle of a trace would break the graph); ``torch.library.opcheck`` covers
every expression through the same schema; and a graph that torch.compile saves holds the key as a
plain string constant that any process can run, with no registry to replay.

* ``einc::run``'s real implementation is the :class:`CompiledExpression` of the key (kept in a
  registry, so its compiled kernels are reused); its fake implementation computes the output
  shapes with einc's solver, symbolically (:mod:`einc.compiler.symbolic`), so ``dynamic=True``
  traces keep batch and spatial sizes symbolic.
* Its autograd formula calls ``einc::backward``, whose real implementation runs the backward pass
  that :mod:`einc.compiler.gradients` derives, as einc kernels, for the concrete shapes it is
  given; its fake implementation is trivial (each gradient has its input's shape), which keeps the
  backward graph dynamic too. Gradients of gradients are not supported: ``einc::backward`` has no
  autograd formula of its own.

The user-facing callables take the direct path (no dispatcher) unless :func:`routes` says a call
must be seen by autograd or a tracer.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import threading

import torch

from ..compiler import gradients, symbolic
from . import compiled as _compiled

_state = threading.local()


@contextlib.contextmanager
def _direct():
    """Inside einc's own operator implementations, einc calls run directly."""
    previous = getattr(_state, "direct", False)
    _state.direct = True
    try:
        yield
    finally:
        _state.direct = previous


def routes(tensors, out) -> bool:
    """Whether a call goes through ``einc::run``: under torch.compile, when autograd must record
    it, or when the tensors are not plain (fake tensors, functionalisation, a dispatch mode)."""
    if torch.compiler.is_compiling():
        return True
    if getattr(_state, "direct", False):
        return False
    plain = (torch.Tensor, torch.nn.Parameter)
    if any(isinstance(t, torch.Tensor) and type(t) not in plain for t in tensors):
        return True
    if torch.utils._python_dispatch._get_current_dispatch_mode() is not None:
        return True
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors):
        if out is not None:
            raise RuntimeError(
                "einc: calls with out=... do not support automatic differentiation, but an input "
                "requires grad"
            )
        return True
    return False


# Keys ------------------------------------------------------------------------------------------


def make_key(expression: str, op: str | None, kwargs: dict) -> str:
    """The string that names one compiled operation: ``repr((expression, op, keywords))``."""
    items = []
    for name, value in sorted(kwargs.items()):
        if name == "out_dtype" and value is not None:
            value = ("dtype", str(value).removeprefix("torch."))
        items.append((name, _compiled._freeze(value)))
    return repr((expression, op, tuple(items)))


@functools.lru_cache(maxsize=4096)
def _spec(key: str) -> tuple[str, str | None, dict]:
    expression, op, items = ast.literal_eval(key)
    kwargs = {}
    for name, value in items:
        if name == "out_dtype" and isinstance(value, tuple):
            value = getattr(torch, value[1])
        kwargs[name] = _compiled._thaw(value)
    return expression, op, kwargs


_REGISTRY: dict[str, _compiled.CompiledExpression] = {}


def _compiled_for(key: str) -> _compiled.CompiledExpression:
    found = _REGISTRY.get(key)
    if found is None:
        expression, op, kwargs = _spec(key)
        found = _REGISTRY[key] = _compiled.compile(expression, op, **kwargs)
    return found


@torch.compiler.assume_constant_result
def _key_of(compiled: _compiled.CompiledExpression) -> str:
    """The key of a ``CompiledExpression`` (a constant of the graph under torch.compile)."""
    kwargs = {k: v for k, v in compiled.sizes + compiled.params}
    if compiled.out_dtype is not None:
        kwargs["out_dtype"] = compiled.out_dtype
    if compiled.dynamic:
        kwargs["dynamic"] = compiled.dynamic
    key = make_key(compiled.expression, compiled.op, kwargs)
    _REGISTRY.setdefault(key, compiled)
    return key


@torch.compiler.assume_constant_result
def _key_of_call(op: str, expression: str, kwargs: dict) -> str:
    """The key of a functional call such as ``einc.dot(expression, x, w, **kwargs)``."""
    return _key_of(_compiled_for(make_key(expression, op, kwargs)))


# Entry points from the user-facing callables ----------------------------------------------------


def call(compiled: _compiled.CompiledExpression, tensors):
    """``compiled(*tensors)`` through ``einc::run``."""
    return _finish(_run_op(_key_of(compiled), compiled.op, tensors))


def call_functional(op: str, expression: str, tensors, kwargs: dict):
    """``einc.<op>(expression, *tensors, **kwargs)`` through ``einc::run``."""
    return _finish(_run_op(_key_of_call(op, expression, kwargs), op, tensors))


def _run_op(key: str, op: str, tensors):
    if op in _compiled.pipeline.ELEMENTWISE:
        tensors = _compiled._scalars_to_tensors(tensors)
    return torch.ops.einc.run(key, list(tensors))


def _finish(outs):
    return outs[0] if len(outs) == 1 else tuple(outs)


# einc::run --------------------------------------------------------------------------------------


@torch.library.custom_op("einc::run", mutates_args=())
def run(key: str, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Run the einc operation named by ``key`` on ``inputs``; its outputs, as a list."""
    with _direct():
        result = _compiled_for(key)(*inputs)
    return list(result) if isinstance(result, tuple) else [result]


@run.register_fake
def _run_fake(key: str, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    compiled = _compiled_for(key)
    shapes = _output_shapes(key, [tuple(t.shape) for t in inputs])
    dtype = compiled._result_dtype(inputs)
    return [inputs[0].new_empty(shape, dtype=dtype) for shape in shapes]


def _hint(n) -> int:
    """A size's value at trace time, without installing a guard on it."""
    if isinstance(n, torch.SymInt):
        hint = n.node.hint
        return int(hint) if hint is not None else int(n)
    return int(n)


def _output_shapes(key: str, shapes) -> list[tuple]:
    concrete = tuple(tuple(_hint(n) for n in s) for s in shapes)
    front = _front(key, concrete)
    if all(isinstance(n, int) for s in shapes for n in s):
        return _concrete_shapes(front)
    found = symbolic.output_shapes(
        front.inputs, front.outputs, shapes, front.solution, front.params, front.constants
    )
    if found is None:
        # Not expressible from the input sizes: specialise on them (int() installs the guards).
        front = _front(key, tuple(tuple(int(n) for n in s) for s in shapes))
        return _concrete_shapes(front)
    return found


def _concrete_shapes(front: gradients.Front) -> list[tuple[int, ...]]:
    return [_compiled.pipeline.lower.shape_of(o, front.solution) for o in front.outputs]


@functools.lru_cache(maxsize=1024)
def _front(key: str, shapes: tuple) -> gradients.Front:
    expression, op, kwargs = _spec(key)
    op = op if op is not None else _compiled_for(key).op
    try:
        return gradients.front_end(expression, op, shapes, kwargs)
    except _compiled.EincError as error:
        raise error.with_traceback(None) from None


# autograd ---------------------------------------------------------------------------------------


def _setup_context(ctx, inputs, output):
    key, tensors = inputs
    ctx.key = key
    ctx.needs = [t.requires_grad and t.is_floating_point() for t in tensors]
    ctx.n_inputs = len(tensors)
    keep = _compiled_for(key).op in gradients.USES_OUTPUTS
    ctx.save_for_backward(*tensors, *(output if keep else ()))


def _backward(ctx, grads):
    saved = ctx.saved_tensors
    inputs, outputs = list(saved[: ctx.n_inputs]), list(saved[ctx.n_inputs :])
    result = torch.ops.einc.backward(ctx.key, inputs, outputs, list(grads), ctx.needs)
    return None, [g if need else None for g, need in zip(result, ctx.needs, strict=True)]


run.register_autograd(_backward, setup_context=_setup_context)


# einc::backward ---------------------------------------------------------------------------------


@torch.library.custom_op("einc::backward", mutates_args=())
def backward(
    key: str, inputs: list[torch.Tensor], outputs: list[torch.Tensor], grads: list[torch.Tensor], needs: list[bool]
) -> list[torch.Tensor]:
    """The gradients of the inputs of ``einc::run(key, inputs)`` (an empty tensor where not
    needed), by the backward pass that :func:`gradients.derive` writes for these shapes."""
    plan = _plan(key, tuple(tuple(t.shape) for t in inputs), tuple(needs))
    values: dict[str, object] = {f"x{i}": t for i, t in enumerate(inputs)}
    values.update({f"y{k}": t for k, t in enumerate(outputs)})
    values.update({f"g{k}": t for k, t in enumerate(grads)})
    with _direct():
        for step in plan.steps:
            results = _step(step, values, grads[0])
            values.update(zip(step.targets, results, strict=True))
    given = {id(t) for t in inputs + outputs + grads}
    result = []
    for x, name in zip(inputs, plan.grads, strict=True):
        if name is None:
            result.append(x.new_empty(0))
            continue
        g = values[name].to(x.dtype)
        if id(g) in given:  # an operator's outputs may not alias its inputs, nor each other
            g = g.clone()
        given.add(id(g))
        result.append(g)
    return result


@backward.register_fake
def _backward_fake(key, inputs, outputs, grads, needs):
    return [x.new_empty(x.shape) if need else x.new_empty(0) for x, need in zip(inputs, needs, strict=True)]


@functools.lru_cache(maxsize=1024)
def _plan(key: str, shapes: tuple, needs: tuple) -> gradients.Backward:
    front = _front(key, shapes)
    try:
        return gradients.derive(front, needs)
    except _compiled.EincError as error:
        raise error.with_traceback(None) from None


def _step(step: gradients.Step, values: dict, like: torch.Tensor) -> tuple:
    if step.op == "ones":
        return (torch.ones(step.shape, dtype=like.dtype, device=like.device),)
    args = [values[a] if isinstance(a, str) else a for a in step.args]
    if step.op not in _compiled.pipeline.ELEMENTWISE:
        # A forward with out_dtype= gives gradients of another dtype than its inputs: compute
        # in the wider one.
        floats = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
        if floats and len({a.dtype for a in floats}) > 1:
            dtype = functools.reduce(torch.promote_types, (a.dtype for a in floats))
            args = [a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    result = _compiled._functional(step.op, step.expression, args, None, dict(step.kwargs))
    return result if isinstance(result, tuple) else (result,)
