"""Tracing. The model is traced with torch.fx (torch.nn layers that have a rule below are leaves,
other modules are traced through); when fx cannot follow forward() (Python control flow on
shapes or values), `torch.export.export` records the ATen ops actually run for the example
input instead. It is traced in eval and in train mode, so that layers used in one mode only
(auxiliary heads) are covered too. A model neither can trace, an op without a rule, or an
example input the model rejects gives an `LmcClaimsError` naming the graph node and the fix.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from ...errors import LmcClaimsError
from .analysis import _Analysis, _nodes_in
from .modules import MODULE_RULES, _Tracer, _m_elementwise, _m_softmax
from .ops import MULTI_RULES, RULES, _op_name
from .values import FIXED, OP_KEY, STATIC, _Multi, _Par, _Shape, _target_name, _unsupported


# ------------------------------------------------------------------ tracing


class _NodeFailed(Exception):
    def __init__(self, node: fx.Node, error: Exception):
        super().__init__(str(error))
        self.node, self.error = node, error


def _describe(r):
    if isinstance(r, torch.Tensor):
        return _Shape(int(s) for s in r.shape), None
    if isinstance(r, (tuple, list)) and any(isinstance(x, torch.Tensor) for x in r):
        return tuple(_describe(x)[0] for x in r), None
    return None, r


class _Prop(fx.Interpreter):
    """Runs the graph on the example input, keeping each node's output shape (and the value
    of non-tensor outputs such as shapes)."""

    def run_node(self, n):
        try:
            r = super().run_node(n)
        except Exception as e:
            raise _NodeFailed(n, e) from e
        n.meta["lmc_shape"], n.meta["lmc_value"] = _describe(r)
        return r


def _fx_graphs(model: nn.Module, x: torch.Tensor) -> list[fx.GraphModule]:
    graphs, codes = [], set()
    for training in (False, True):
        model.train(training)
        tracer = _Tracer()
        graph = tracer.trace(model)
        gm = fx.GraphModule(tracer.root, graph)
        if gm.code not in codes:
            codes.add(gm.code)
            graphs.append(gm)
    model.eval()
    for gm in graphs:
        _propagate(gm, x)
    return graphs


def _propagate(gm: fx.GraphModule, x: torch.Tensor) -> None:
    """Shapes of every node: with fake tensors (no arithmetic) where every op supports them,
    else by running the graph on the example input."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    try:
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True) as mode:
            _Prop(gm).run(mode.from_tensor(x))
        return
    except Exception:
        pass
    with torch.no_grad():
        _Prop(gm).run(x)


def _export_graphs(model: nn.Module, x: torch.Tensor):
    graphs = []
    for training in (False, True):
        model.train(training)
        ep = torch.export.export(model, (x,))
        sig = ep.graph_signature
        names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        for n in ep.graph.nodes:
            val = n.meta.get("val")
            if isinstance(val, (tuple, list)):
                n.meta["lmc_shape"] = tuple(_describe(v)[0] for v in val)
                n.meta["lmc_value"] = None
            else:
                n.meta["lmc_shape"], n.meta["lmc_value"] = _describe(val)
            if isinstance(n.meta["lmc_value"], torch.SymInt):
                n.meta["lmc_value"] = int(n.meta["lmc_value"])
        graphs.append((ep.graph, names))
    return graphs


def _analyse_fx(A: _Analysis, gm: fx.GraphModule) -> None:
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        A.node = node
        if node.op == "placeholder":
            A.values[node] = FIXED
        elif node.op == "get_attr":
            shape = A.state_shapes.get(node.target)
            A.values[node] = _Par(node.target, range(len(shape)), shape) if shape is not None else (
                FIXED if isinstance(node.meta.get("lmc_shape"), _Shape) else STATIC)
        elif node.op == "call_module":
            m = modules[node.target]
            rule = MODULE_RULES[type(m)]
            if rule not in (_m_elementwise, _m_softmax):
                _fix_multi(A, node)
            A.values[node] = _guarded(node, lambda: rule(A, node, m, node.target))
        elif node.op in ("call_function", "call_method"):
            A.values[node] = _guarded(node, lambda: _apply_rule(A, node))
        elif node.op == "output":
            A.fix_args(node.args, node.kwargs)
        else:
            raise _unsupported(node, f"graph operation {node.op} is not supported")


def _analyse_export(A: _Analysis, graph: fx.Graph, names: dict) -> None:
    for node in graph.nodes:
        A.node = node
        if node.op == "placeholder":
            name = names.get(node.name)
            if name is not None and name in A.state_shapes:
                A.values[node] = _Par(name, range(len(A.state_shapes[name])), A.state_shapes[name])
            else:
                A.values[node] = FIXED if isinstance(node.meta.get("lmc_shape"), _Shape) else STATIC
        elif node.op == "call_function":
            A.values[node] = _guarded(node, lambda: _apply_rule(A, node))
        elif node.op == "output":
            A.fix_args(node.args, node.kwargs)
        elif node.op == "get_attr":
            A.values[node] = FIXED if isinstance(node.meta.get("lmc_shape"), _Shape) else STATIC
        else:
            raise _unsupported(node, f"graph operation {node.op} is not supported")


def _guarded(node: fx.Node, apply):
    """A rule's value for the node; a rule that fails in a way it did not foresee (arguments of an
    unexpected kind, a form of the op it does not know) is an error naming the node and the fix,
    never a bare Python exception."""
    try:
        return apply()
    except LmcClaimsError:
        raise
    except Exception as e:
        detail = str(e).strip().splitlines()
        raise _unsupported(node, f"its rule does not handle this call ({type(e).__name__}: "
                                 f"{detail[0] if detail else ''})") from None


def _apply_rule(A: _Analysis, node: fx.Node):
    inputs = [A.values[a] for a in _nodes_in((node.args, node.kwargs))]
    if not any(A.live(v) for v in inputs):
        # computed from fixed values only (shapes, constants, fixed tensors): the same in the permuted network
        return A.out_like(node.meta.get("lmc_shape"), lambda s: FIXED)
    name = _op_name(node)
    node.meta[OP_KEY] = name  # what rules read (`_op_of`) instead of the tables that hold them
    rule = RULES.get(name) if name is not None else None
    if rule is None:
        what = f"method .{node.target}()" if node.op == "call_method" else f"function {_target_name(node.target)}"
        raise _unsupported(node, f"{what} on a permuted tensor has no rule")
    if rule not in MULTI_RULES:
        _fix_multi(A, node)
    return rule(A, node, node.args, node.kwargs)


def _fix_multi(A: _Analysis, node: fx.Node) -> None:
    """Operands re-indexed along several dimensions, for a rule that follows one: fixed (then
    they are the same in the permuted network, which the rule can follow)."""
    for a in _nodes_in((node.args, node.kwargs)):
        val = A.values[a]
        if isinstance(val, _Multi):
            A.fix(val)
            A.values[a] = FIXED
        elif isinstance(val, tuple) and any(isinstance(x, _Multi) for x in val):
            for x in val:
                if isinstance(x, _Multi):
                    A.fix(x)
            A.values[a] = tuple(FIXED if isinstance(x, _Multi) else x for x in val)
