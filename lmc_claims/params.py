"""How claim tests are parametrised from the scale, and how a test's parameters and claim are read
back from its pytest item (so that a test that crashes is still filed under both).
"""

from __future__ import annotations

import json

import pytest

RESULT_PROPERTY = "lmc_claims_result"
CLAIM_PROPERTY = "lmc_claims_claim"  # the claim a test verifies, so that a crash is filed under it
PARAMS_PROPERTY = "lmc_claims_params"  # its parameters (arch, dataset, width, ...), for the same reason


def tag_claim_tests(items: list[pytest.Item]) -> None:
    """Give every claim test its claim and parameters as report properties, so that a test that
    crashes before judging (in a fixture, while training) is still filed under both."""
    for item in items:
        if "claims" not in item.keywords:
            continue
        claims = sorted(claim_ids_of(item))
        if len(claims) == 1:
            item.user_properties.append((CLAIM_PROPERTY, claims[0]))
        item.user_properties.append((PARAMS_PROPERTY, json.dumps(node_params(item), default=str)))


def claim_ids_of(item: pytest.Item) -> set[str]:
    """The claim a test verifies: its module's CLAIM, or a `claim` parameter."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "claim" in params:
        return {params["claim"]}
    module_claim = getattr(getattr(item, "module", None), "CLAIM", None)
    return {module_claim} if module_claim else set()


def node_params(node: pytest.Item) -> dict:
    """The test's parametrisation as flat parameters (arch, dataset, width, ...)."""
    params = dict(getattr(getattr(node, "callspec", None), "params", {}))
    for key_param in ("setting_key", "setting"):
        if key_param in params:
            params = dict(zip(("arch", "dataset", "width"), params.pop(key_param)), **params)
    for run_param in ("width_run", "two_layer_run"):
        if run_param in params:
            params = dict(zip(("arch", "dataset"), params.pop(run_param)), **params)
    if "dimension_family" in params:
        params = dict(zip(("variation", "arch", "dataset"), params.pop("dimension_family")), **params)
    return params


# -- parametrisation from the scale ---------------------------------------------------------

def _skip_marks(reason: str | None) -> list:
    """A dataset whose files are absent skips its claim tests, saying where to put which files."""
    return [pytest.mark.skip(reason=reason)] if reason else []


def parametrize(metafunc: pytest.Metafunc, scale) -> None:
    """Claim tests asking for `setting_key` run once per architecture x dataset x width of the
    scale; `width_run` once per architecture x dataset with several widths; `two_layer_run` once,
    on the scale's two-layer family (`scales.two_layer_family`); `dimension_family` once per way
    the dimension claim varies the neurons' dimension."""
    from .data import availability
    from .scales import figure2_family, two_layer_family

    if "dimension_family" in metafunc.fixturenames:
        # The dimension claim as the paper's Figure 2 (learning rates of a 3 x 512 MLP), and beyond
        # the paper across input dimensions of two-layer nets; each named by its first run.
        families = {"lr": figure2_family(scale)[0], "input_dim": two_layer_family(scale)[0]}
        metafunc.parametrize("dimension_family", [pytest.param(
            (variation, r.arch, r.dataset), id=f"{variation}-{r.arch}-{r.dataset}", marks=_skip_marks(availability(r.dataset)))
            for variation, r in families.items()])
        return
    if "two_layer_run" in metafunc.fixturenames:
        # Claims about two-layer nets run on the scale's own two-layer family (its extra runs),
        # whatever architectures are being verified.
        base, _ = two_layer_family(scale)
        metafunc.parametrize("two_layer_run", [pytest.param(
            (base.arch, base.dataset), id=f"{base.arch}-{base.dataset}", marks=_skip_marks(availability(base.dataset)))])
        return
    runs = runs_for(metafunc, scale)
    missing = {d: availability(d) for d in {r.dataset for r in runs}}
    if "width_run" in metafunc.fixturenames:
        # Claims across widths: one test per architecture x dataset with at least two widths.
        metafunc.parametrize("width_run", [
            pytest.param((r.arch, r.dataset), id=f"{r.arch}-{r.dataset}", marks=_skip_marks(missing[r.dataset]))
            for r in runs if len(r.widths) >= 2])
        return
    # `setting_key` (arch, dataset, width); `setting`, its former name, still works for users' own claim tests.
    name = "setting_key" if "setting_key" in metafunc.fixturenames else "setting"
    metafunc.parametrize(name, [
        pytest.param((r.arch, r.dataset, w), id=f"{r.arch}-{r.dataset}-w{w}", marks=_skip_marks(missing[r.dataset]))
        for r in runs for w in r.widths])


def runs_for(metafunc: pytest.Metafunc, scale) -> list:
    """The scale's runs a claim test measures: a run named for a protocol ("mlp@ito") only for the
    claims that declare that protocol (`Claim.protocol`), every other run for every claim."""
    from .catalogue import get_claim
    from .scales import protocol_of

    ids = {getattr(metafunc.module, "CLAIM", None)}
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if isinstance(mark.args[0], (list, tuple)) else [n.strip() for n in mark.args[0].split(",")]
        if "claim" in names:
            at = names.index("claim")
            for v in mark.args[1]:
                values = getattr(v, "values", v)  # pytest.param(...) or a plain value / tuple
                ids.add(values[at] if len(names) > 1 else (values[0] if hasattr(v, "values") else v))
    protocols = set()
    for claim_id in ids - {None}:
        try:
            protocols.add(get_claim(claim_id).protocol)
        except Exception:  # a claim this catalogue does not know: the test says so when it runs
            protocols.add("")
    if "" in protocols or not protocols:
        return list(scale.runs)
    return [r for r in scale.runs if protocol_of(r.arch) in ("", *protocols)]
