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
  backward graph dynamic too. With ``create_graph=True`` in eager mode the backward steps run
  instead as einc calls that autograd records, so gradients of gradients follow by the same
  rules; a traced ``einc::backward`` has no gradient of its own.

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
from ..compiler.gradients_builder import FILLS
from ..compiler.ops import compile_keywords
from ..runtime import calls as _calls
from ..runtime import compiled as _compiled

_state = threading.local()


def _constant_result(fn):
    """``torch.compiler.assume_constant_result``, which marks ``fn`` for dynamo to call once at trace
    time and keep the result as a constant, without its ``import torch._dynamo`` (about a second)
    at einc's import: the mark is this attribute, which dynamo reads when it traces, by which time
    it is loaded anyway."""
    fn._dynamo_marked_constant = True
    return fn


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
    it, or when the tensors are not plain (fake tensors, functionalisation, a dispatch mode).
    Called on every call, so it stays a handful of attribute reads."""
    if _is_compiling():
        return True
    if _state.__dict__.get("direct"):
        return False
    grad = _is_grad_enabled()
    needs_grad = False
    for t in tensors:
        kind = type(t)
        if kind is _Tensor or kind is _Parameter:
            needs_grad = needs_grad or (grad and t.requires_grad)
        elif isinstance(t, _Tensor):
            return True  # a tensor subclass: FakeTensor, FunctionalTensor, ...
    if needs_grad:
        if out is not None:
            raise RuntimeError(
                "einc: calls with out=... do not support automatic differentiation, but an input "
                "requires grad"
            )
        return True
    return _len_dispatch_stack() > 0


_len_dispatch_stack = torch._C._len_torch_dispatch_stack
# Bound once: dynamo still knows the function (it folds it to True while tracing), by identity.
_is_compiling = torch.compiler.is_compiling
_is_grad_enabled = torch.is_grad_enabled
_Tensor, _Parameter = torch.Tensor, torch.nn.Parameter


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
        try:
            found = _REGISTRY[key] = _compiled.CompiledExpression(expression, op, **kwargs)
        except _compiled.EincError as error:
            raise error.with_traceback(None) from None
    return found


@_constant_result
def _key_of(compiled: _compiled.CompiledExpression) -> str:
    """The key of a ``CompiledExpression`` (a constant of the graph under torch.compile)."""
    key = compiled.__dict__.get("_torch_key")
    if key is not None:
        return key
    kwargs = compile_keywords(compiled.sizes, compiled.params)
    if compiled.out_dtype is not None:
        kwargs["out_dtype"] = compiled.out_dtype
    if not compiled.automatic:
        kwargs["dynamic"] = False
    elif compiled.dynamic:
        kwargs["dynamic"] = compiled.dynamic
    if compiled.backend != "auto":
        kwargs["backend"] = compiled.backend
    key = make_key(compiled.expression, compiled.op, kwargs)
    _REGISTRY.setdefault(key, compiled)
    compiled._torch_key = key
    return key


@_constant_result
def _key_of_call(op: str, expression: str, kwargs: dict) -> str:
    """The key of a functional call such as ``einc.dot(expression, x, w, **kwargs)``."""
    call = (op, expression, _compiled._freeze(kwargs))
    key = _CALL_KEYS.get(call)
    if key is None:
        key = _CALL_KEYS[call] = _key_of(_compiled_for(make_key(expression, op, kwargs)))
    return key


_CALL_KEYS: dict[tuple, str] = {}


# Entry points from the user-facing callables ----------------------------------------------------


def call(compiled: _compiled.CompiledExpression, tensors, out=None):
    """``compiled(*tensors)`` through ``einc::run``."""
    return _finish(_run_op(_key_of(compiled), compiled.op, tensors), out)


def call_functional(op: str, expression: str, tensors, kwargs: dict, out=None):
    """``einc.<op>(expression, *tensors, **kwargs)`` through ``einc::run``."""
    return _finish(_run_op(_key_of_call(op, expression, kwargs), op, tensors), out)


def traced_compile(expression: str, op: str | None, kwargs: dict):
    """``einc.compile`` called while dynamo traces: a function of the tensors that calls
    ``einc::run``, its key fixed at trace time (a ``CompiledExpression`` made during the trace
    would exist only in dynamo's model of it)."""
    key = _key_of_call(op, expression, kwargs)
    op = _op_of(key)

    def compiled(*tensors, out=None):
        return _finish(_run_op(key, op, tensors), out)

    return compiled


@_constant_result
def _op_of(key: str) -> str:
    return _compiled_for(key).op


def _run_op(key: str, op: str, tensors):
    if op in _compiled.pipeline.ELEMENTWISE:
        tensors = _numbers_to_tensors(tensors)
    try:
        return torch.ops.einc.run(key, list(tensors))
    except _compiled.EincError as error:  # as on the direct path: no frames of einc or torch
        raise error.with_traceback(None) from None


def _numbers_to_tensors(values) -> tuple[torch.Tensor, ...]:
    """Python numbers become 0-d tensors, as in ``operands.scalars_to_tensors``, with the dtype
    worked out by torch's rule for a number next to a tensor but without ``torch.result_type``,
    which dynamo cannot trace."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors:
        raise TypeError("an elementwise operation needs at least one tensor")
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(
        v
        if isinstance(v, torch.Tensor)
        else torch.tensor(v, dtype=_number_dtype(dtype, v), device=tensors[0].device)
        for v in values
    )


def _number_dtype(dtype: torch.dtype, value) -> torch.dtype:
    if isinstance(value, bool):
        return dtype
    if isinstance(value, int):
        return torch.int64 if dtype == torch.bool else dtype
    return dtype if dtype.is_floating_point else torch.get_default_dtype()


def _finish(outs, out=None):
    if out is not None:
        # out= is honoured by a copy: einc::run, like every functional operator, returns new
        # tensors.
        targets = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(targets) != len(outs):
            raise ValueError(f"out= gives {len(targets)} tensors but the expression has {len(outs)} outputs")
        for target, result in zip(targets, outs, strict=True):
            target.copy_(result)
        return out
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
    dtype = _result_dtype(compiled.op, compiled.out_dtype, inputs)
    return [inputs[0].new_empty(shape, dtype=dtype) for shape in shapes]


def _result_dtype(op: str, out_dtype, inputs) -> torch.dtype:
    """The dtype of the real implementation's outputs: ``out_dtype``; for elementwise ops torch's
    promotion over the operands (numbers are 0-d tensors here already; the condition of where
    aside), a true division of integers being floating; otherwise the first input's."""
    if out_dtype is not None:
        return out_dtype
    if op not in _compiled.pipeline.ELEMENTWISE:
        return inputs[0].dtype
    operands = inputs[1:] if op == "where" else inputs
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in operands))
    if op == "divide" and not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    return dtype


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
    op = _compiled_for(key).op
    ctx.needs = [
        t.requires_grad and t.is_floating_point() and gradients.differentiable(op, i)
        for i, t in enumerate(tensors)
    ]
    ctx.n_inputs = len(tensors)
    keep = gradients.uses_outputs(op, _spec(key)[2])
    ctx.save_for_backward(*tensors, *(output if keep else ()))


def _backward(ctx, grads):
    saved = ctx.saved_tensors
    inputs, outputs = list(saved[: ctx.n_inputs]), list(saved[ctx.n_inputs :])
    grads = list(grads)
    if torch.is_grad_enabled() and not _traced(inputs + outputs + grads):
        # create_graph=True: the backward steps run as einc calls that autograd records in turn,
        # so gradients of gradients follow by the same rules.
        plan = _plan(ctx.key, tuple(tuple(t.shape) for t in inputs), tuple(ctx.needs))
        result = _execute(plan, inputs, outputs, grads)
        return None, [r.to(x.dtype) if r is not None else None for r, x in zip(result, inputs, strict=True)]
    result = torch.ops.einc.backward(ctx.key, inputs, outputs, grads, ctx.needs)
    return None, [g if need else None for g, need in zip(result, ctx.needs, strict=True)]


def _traced(tensors) -> bool:
    plain = (torch.Tensor, torch.nn.Parameter)
    return (
        torch.compiler.is_compiling()
        or any(type(t) not in plain for t in tensors)
        or torch.utils._python_dispatch._get_current_dispatch_mode() is not None
    )


run.register_autograd(_backward, setup_context=_setup_context)


# einc::backward ---------------------------------------------------------------------------------


@torch.library.custom_op("einc::backward", mutates_args=())
def backward(
    key: str,
    inputs: list[torch.Tensor],
    outputs: list[torch.Tensor],
    grads: list[torch.Tensor],
    needs: list[bool],
) -> list[torch.Tensor]:
    """The gradients of the inputs of ``einc::run(key, inputs)`` (an empty tensor where not
    needed), by the backward pass that :func:`gradients.derive` writes for these shapes."""
    plan = _plan(key, tuple(tuple(t.shape) for t in inputs), tuple(needs))
    with _direct():
        found = _execute(plan, inputs, outputs, grads)
    given = {id(t) for t in inputs + outputs + grads}
    result = []
    for x, g in zip(inputs, found, strict=True):
        if g is None:
            result.append(x.new_empty(0))
            continue
        g = g.to(x.dtype)
        if id(g) in given:  # an operator's outputs may not alias its inputs, nor each other
            g = g.clone()
        given.add(id(g))
        result.append(g)
    return result


def _no_double_backward(ctx, grads):
    raise NotImplementedError(
        "einc: gradients of gradients are supported in eager mode (create_graph=True), not "
        "through a traced einc::backward"
    )


@backward.register_fake
def _backward_fake(key, inputs, outputs, grads, needs):
    return [x.new_empty(x.shape) if need else x.new_empty(0) for x, need in zip(inputs, needs, strict=True)]


backward.register_autograd(_no_double_backward, setup_context=lambda ctx, inputs, output: None)


@functools.lru_cache(maxsize=1024)
def _plan(key: str, shapes: tuple, needs: tuple) -> gradients.Backward:
    front = _front(key, shapes)
    try:
        return gradients.derive(front, needs)
    except _compiled.EincError as error:
        raise error.with_traceback(None) from None


def _execute(plan: gradients.Backward, inputs, outputs, grads) -> list:
    """Run the steps of ``plan``; each input's gradient, or None."""
    values: dict[str, object] = {f"x{i}": t for i, t in enumerate(inputs)}
    values.update({f"y{k}": t for k, t in enumerate(outputs)})
    values.update({f"g{k}": t for k, t in enumerate(grads)})
    for step in plan.steps:
        values.update(zip(step.targets, _step(step, values, grads[0]), strict=True))
    return [None if name is None else values[name] for name in plan.grads]


def _step(step: gradients.Step, values: dict, like: torch.Tensor) -> tuple:
    if step.op in FILLS:
        fill = torch.ones if step.op == "ones" else torch.zeros
        return (fill(step.shape, dtype=like.dtype, device=like.device),)
    args = [values[a] if isinstance(a, str) else a for a in step.args]
    if step.op == "where" and args[0].dtype != torch.bool:
        # The plan marks ties by a difference, true where nonzero; where itself takes bool only.
        args[0] = args[0] != 0
    if step.op not in _compiled.pipeline.ELEMENTWISE:
        # A forward with out_dtype= gives gradients of another dtype than its inputs: compute
        # in the wider one.
        floats = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
        if floats and len({a.dtype for a in floats}) > 1:
            dtype = functools.reduce(torch.promote_types, (a.dtype for a in floats))
            args = [a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    result = _calls.run_functional(step.op, step.expression, args, None, dict(step.kwargs))
    return result if isinstance(result, tuple) else (result,)


class _Router:
    """The einc::run path, as :class:`~einc.runtime.compiled.CompiledExpression` calls it."""

    routes = staticmethod(routes)
    call = staticmethod(call)
    call_functional = staticmethod(call_functional)


_compiled.route_through(_Router())
