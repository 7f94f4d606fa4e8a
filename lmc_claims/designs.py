"""The papers' protocol designs as seed arithmetic (no torch): which models form Ito et al.'s
triples and merge sets, the common model of the transitivity claim, and the runs Ferbach et al.'s
dimension claim compares. The measurements use them to measure, the plan to build up front, so
both read one definition.
"""

from __future__ import annotations

from typing import Sequence

from .scales import Run, Scale, figure2_family, two_layer_family

Pair = tuple[int, int]  # (seed of model A, seed of model B): B is permuted onto A
Search = tuple[str, int, int]  # (method, seed a, seed b): b permuted onto a

# -- Ito et al. §6: three models and merges -------------------------------------------------------

# The §6 test compares WM with Ito et al.'s STE recipe; Git Re-Basin's recipe is supporting data per
# pair (ste_diagnostics), not per triple: on a CPU its 464 steps of batch 1,000 are the run's
# costliest searches (a ResNet20 x2 on digits: 2.5 min each), and it decides nothing here.
THREE_MODEL_METHODS = ("wm", "ste")
# Each merge set's members permuted onto its anchor ("naive": as trained), or Git Re-Basin's Alg. 3.
MERGE_METHODS = ("naive", "wm", "ste", "mergemany")


def model_triples(pairs: Sequence[Pair], thirds: Sequence[int]) -> list[tuple[int, int, int]]:
    """(anchor a, b, c) triples: each pair (a, b) with its own third model c (`Scale.thirds`), so the
    triples share no model (independent samples) and b's matching onto a is the pair's."""
    return [(a, b, c) for (a, b), c in zip(pairs, thirds)]


def model_sets(triples: Sequence[tuple[int, ...]], size: int) -> list[list[int]]:
    """Disjoint model sets of `size` (anchor first), laid out over the triples' seeds in order."""
    order = [m for t in triples for m in t]
    return [order[i : i + size] for i in range(0, len(order) - size + 1, size)]


def merge_sets(triples: Sequence[tuple[int, ...]], merge_sizes: Sequence[int]) -> dict[int, list[list[int]]]:
    """The disjoint model sets merged for each N the triples' models allow (anchor first)."""
    return {n: v for n in merge_sizes if (v := model_sets(triples, n))}


def three_model_searches(triples: Sequence[tuple[int, int, int]], methods=THREE_MODEL_METHODS) -> list[Search]:
    """The searches Ito et al.'s three-model test runs: b and c onto the anchor a, by each method."""
    return [(m, a, o) for a, b, c in triples for o in (b, c) for m in methods]


def merge_searches(sets_by_n: dict[int, Sequence[Sequence[int]]]) -> list[Search]:
    """The searches the merges run: every set's other models onto its anchor, by WM and STE."""
    return [(m, seeds[0], o) for sets in sets_by_n.values() for seeds in sets for o in seeds[1:]
            for m in MERGE_METHODS if m in ("wm", "ste")]


# -- Csiszárik et al.: transitivity ----------------------------------------------------------------

def transitive_searches(pairs: Sequence[Pair], thirds: Sequence[int]) -> list[Search]:
    """Both members of every pair re-based (WM) onto the pair's own third model C."""
    return [("wm", c, s) for pair, c in zip(pairs, thirds) for s in pair]


# -- Ferbach et al.: the two-layer family and Figure 2 ---------------------------------------------

# How the settings of the dimension claim vary the neurons' dimension: as the paper's Figure 2,
# the SGD learning rate of a 3 x 512 MLP; or, beyond the paper, the input dimension of two-layer
# nets (the dataset projected onto k principal components).
VARIATIONS = ("lr", "input_dim")


def variation_runs(scale: Scale, variation: str) -> tuple[Run, ...]:
    if variation == "input_dim":
        return two_layer_family(scale)[1]
    if variation == "lr":
        return figure2_family(scale)
    raise ValueError(f"unknown variation {variation!r}; expected one of {VARIATIONS}")


def setting_label(run: Run, variation: str) -> str:
    return run.dataset if variation == "input_dim" else f"lr={run.recipe.lr:g}"


def shared_widths(runs) -> tuple[int, ...]:
    """Widths every run has: settings are compared width by width."""
    common = set.intersection(*(set(r.widths) for r in runs))
    return tuple(sorted(common))


def two_layer_settings(scale: Scale, variation: str | None) -> list[tuple[str, str, int]]:
    """The two-layer family's settings a Ferbach et al. claim test measures: the base run at every
    width (barrier vs width), a variation's runs at their shared widths (Figure 2: the largest), or
    with variation "all" every setting of the family."""
    if variation is None:
        base, _ = two_layer_family(scale)
        return [(base.arch, base.dataset, w) for w in base.widths]
    if variation not in VARIATIONS:  # all of the family
        keys = two_layer_settings(scale, None) + [k for v in VARIATIONS for k in two_layer_settings(scale, v)]
        return list(dict.fromkeys(keys))
    runs = variation_runs(scale, variation)
    widths = shared_widths(runs)
    widths = (max(widths),) if variation == "lr" else widths
    return [(r.arch, r.dataset, w) for r in runs for w in widths]
