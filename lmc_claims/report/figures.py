"""Figures for the report, chosen by the variables a claim test's dataset holds (never by claim id).

A figure kind is a drawing function registered with `@figure(name, needs={variable: dims})`.
Every claim test whose dataset holds those variables (with at least those dimensions) gets the
figure, so a new claim that stores, say, `combination_loss` over (combination, sample) gets a
plot by adding one registered function to `plots.py` (the decorator lives in `kinds.py`), without touching the report code:

    @figure("combination-loss", needs={"combination_loss": ("combination",)},
            caption="Loss of every hypercube combination, one histogram per search.")
    def combination_loss(fig, ds):
        ax = fig.subplots()
        ...

A kind with `across="width"` is drawn once per claim and setting instead, from all the claim's
datasets that differ only in that parameter (e.g. barrier against width); its function receives
a list of (parameter value, dataset) pairs sorted by value.

matplotlib is imported only when figures are drawn (Agg canvas, no pyplot state), so importing
the plugin stays cheap and no display is needed.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from . import plots  # noqa: F401  (registers the built-in kinds)
from .kinds import FigureKind, figure, registered  # noqa: F401  (figure: the decorator, re-exported)

DPI = 100


def kinds() -> list[FigureKind]:
    return registered()


@dataclass
class RenderedFigure:
    kind: str
    file: str  # relative to the report directory: figures/NAME.png
    title: str
    caption: str
    png: bytes = field(repr=False)


@dataclass
class FigureSet:
    by_test: dict[str, list[RenderedFigure]] = field(default_factory=dict)  # data file -> its figures
    by_claim: dict[str, list[RenderedFigure]] = field(default_factory=dict)  # claim id -> figures across its tests
    warnings: list[str] = field(default_factory=list)

    def all(self) -> list[RenderedFigure]:
        return [f for fs in (*self.by_claim.values(), *self.by_test.values()) for f in fs]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")


def _params_title(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _render(kind: FigureKind, data, title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=kind.size, layout="constrained")
    FigureCanvasAgg(fig)
    kind.draw(fig, data)
    fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def render_figures(items: list[tuple[dict, object]]) -> FigureSet:
    """Draw every figure that applies to (record, dataset) pairs of claim tests.

    A figure that cannot be drawn becomes a warning, not an error: the report must still be written."""
    out = FigureSet()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        out.warnings.append("matplotlib is not installed, so the report has no figures: pip install 'matplotlib>=3.7'")
        return out

    def attempt(kind: FigureKind, data, title: str, stem: str) -> RenderedFigure | None:
        try:
            png = _render(kind, data, title)
        except Exception as e:  # a plotting edge case must not cost the run its report
            out.warnings.append(f"figure {kind.name} for {title} could not be drawn: {type(e).__name__}: {e}")
            return None
        return RenderedFigure(kind.name, f"figures/{_slug(stem)}.{kind.name}.png", title, kind.caption, png)

    for kind in kinds():
        matching = [(r, ds) for r, ds in items if kind.matches(ds)]
        if kind.across is None:
            for r, ds in matching:
                title = f"{r['id']} [{_params_title(r['params'])}]"
                fig = attempt(kind, ds, title, re.sub(r"\.nc$", "", r["data_file"].split("/")[-1]))
                if fig:
                    out.by_test.setdefault(r["data_file"], []).append(fig)
            continue
        groups: dict[tuple, list[tuple[object, object]]] = {}
        for r, ds in matching:
            if kind.across in r["params"]:
                rest = tuple((k, v) for k, v in r["params"].items() if k != kind.across)
                groups.setdefault((r["id"], rest), []).append((r["params"][kind.across], ds))
        for (claim_id, rest), pairs in groups.items():
            if len({v for v, _ in pairs}) < 2:
                continue  # one value is not a trend; the per-test figures already show it
            pairs.sort(key=lambda p: p[0])
            title = f"{claim_id} [{_params_title(dict(rest))}]" if rest else claim_id
            fig = attempt(kind, pairs, title, "_".join([claim_id, *(f"{k}={v}" for k, v in rest)]))
            if fig:
                out.by_claim.setdefault(claim_id, []).append(fig)
    return out
