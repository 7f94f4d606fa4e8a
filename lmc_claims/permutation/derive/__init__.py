"""Deriving a permutation spec from a model's graph, for models nobody wrote one for.

Tracing. The model is traced with torch.fx (torch.nn layers that have a rule below are leaves,
other modules are traced through); when fx cannot follow forward() (Python control flow on
shapes or values), `torch.export.export` records the ATen ops actually run for the example
input instead. It is traced in eval and in train mode, so that layers used in one mode only
(auxiliary heads) are covered too. A model neither can trace, an op without a rule, or an
example input the model rejects gives an `LmcClaimsError` naming the graph node and the fix.

Why every derived permutation is an exact symmetry. With the parameters permuted as the spec
says, every value of the permuted network equals the original one re-indexed along its
channel dimension by its layout (a value whose layout is fixed is identical). The network
input and output are fixed. Each rule keeps this true:
Each module of `rules/` (and `modules.py` for the torch.nn leaves) states the part of the argument its
rules carry; `assemble.py` lists where no permutation is proved and the axes stay fixed.

Parts, lowest first: values <- groups <- analysis (the layout algebra) <- rules/{pointwise, shape,
indexing, layers, attention} <- ops (name tables) <- modules (torch.nn leaves, tracer) <- trace
(shape propagation, walk) <- assemble (layouts -> PermutationSpec) <- here (`derive_spec`).
"""

from __future__ import annotations

import torch
from torch import fx
from torch import nn

from ...errors import LmcClaimsError
from ..spec import PermutationSpec
from .analysis import _Analysis
from .assemble import _spec
from .trace import _NodeFailed, _analyse_export, _analyse_fx, _export_graphs, _fx_graphs
from .values import HAND_WRITTEN, _Unsupported, _target_name


def _input_error(x: torch.Tensor, node: fx.Node | None, error: Exception) -> LmcClaimsError:
    where = f" at graph node {node.name!r} ({_target_name(node.target)})" if node is not None else ""
    msg = str(error).strip().splitlines()
    return LmcClaimsError(
        f"Cannot derive a permutation spec: the model fails on the example input of shape {tuple(x.shape)} "
        f"(dtype {x.dtype}){where}: {type(error).__name__}: {msg[0] if msg else ''}",
        "pass an example input the model accepts: a small batch shaped like its training data, "
        "(batch, channels, height, width) for image models, e.g. torch.zeros(2, 3, 32, 32).",
    )


def _runs(model: nn.Module, x: torch.Tensor) -> Exception | None:
    try:
        with torch.no_grad():
            model(x)
    except Exception as e:
        return e
    return None


def derive_spec(model: nn.Module, example_input: torch.Tensor, *, tracer: str = "auto") -> PermutationSpec:
    """The permutation spec of `model`, derived from its graph on `example_input` (a small batch).

    `tracer`: "fx" (torch.fx.symbolic_trace), "export" (torch.export.export) or "auto" (fx,
    falling back to export where fx cannot trace the model or meets an op it has no rule for).
    """
    if tracer not in ("auto", "fx", "export"):
        raise ValueError(f"tracer must be 'auto', 'fx' or 'export', not {tracer!r}")
    if not isinstance(example_input, torch.Tensor):
        raise LmcClaimsError(
            f"Cannot derive a permutation spec: the example input is a {type(example_input).__name__}, not a tensor.",
            "pass one batch of inputs as a tensor, e.g. torch.zeros(2, 3, 32, 32).")
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    x = example_input
    if first is not None and x.is_floating_point() and x.dtype != first.dtype:
        x = x.to(first.dtype)
    was_training = model.training
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    try:
        return _derive(model, x, tracer)
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in buffers:
                    b.copy_(buffers[k])
        model.train(was_training)


def _derive(model: nn.Module, x: torch.Tensor, tracer: str) -> PermutationSpec:
    fx_error: LmcClaimsError | None = None
    if tracer in ("auto", "fx"):
        try:
            graphs = _fx_graphs(model, x)
        except _NodeFailed as e:
            if _runs(model, x) is not None:
                raise _input_error(x, e.node, e.error) from None
            fx_error = LmcClaimsError(
                f"Cannot derive a permutation spec: the torch.fx graph of {type(model).__name__} fails at node "
                f"{e.node.name!r} ({type(e.error).__name__}: {e.error}) although the model runs.",
                "remove Python control flow on shapes or values from forward(), or " + HAND_WRITTEN + ".")
        except Exception as e:  # fx raises many types for untraceable control flow
            fx_error = LmcClaimsError(
                f"Cannot derive a permutation spec: torch.fx could not trace {type(model).__name__} "
                f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}).",
                "remove data-dependent Python control flow from forward(), or " + HAND_WRITTEN + ".")
        else:
            try:
                A = _Analysis(model)
                for gm in graphs:
                    _analyse_fx(A, gm)
                return _spec(A, model)
            except _Unsupported as e:
                fx_error = e
        if tracer == "fx":
            raise fx_error
    try:
        graphs = _export_graphs(model, x)
    except Exception as e:
        failure = _runs(model, x)
        if failure is not None:
            raise _input_error(x, None, failure) from None
        if fx_error is not None and isinstance(fx_error, _Unsupported):
            raise fx_error from None
        detail = str(e).strip().splitlines()
        raise LmcClaimsError(
            (fx_error.problem + " " if fx_error is not None else "Cannot derive a permutation spec: ")
            + f"torch.export could not trace it either ({type(e).__name__}: {detail[0] if detail else ''}).",
            "remove data-dependent Python control flow from forward() (branches on tensor values), or "
            + HAND_WRITTEN + ".") from None
    try:
        A = _Analysis(model)
        for graph, names in graphs:
            _analyse_export(A, graph, names)
        return _spec(A, model)
    except _Unsupported as e:
        raise (fx_error if fx_error is not None and isinstance(fx_error, _Unsupported) else e) from None
