"""What a claims run will ask the lab for: the models and permutation searches, per setting, so
that all of it can be submitted up front (`executor.prebuild`) and the claim tests find a warm
cache.

The unit is the setting. A setting of the scale's runs (the claims parametrised by `setting` or
`width_run`) needs its pairs' models and third models, each pair matched by every search,
Ito et al.'s triples and merge sets (`measurements.ito2024.model_triples` / `model_sets`) and the
transitivity claim's matchings onto a third model (`measurements.csiszarik2023.third_model`). A
setting of the scale's two-layer family (the Ferbach et al. claims) needs its pairs matched by
weight matching. A claim that compares with the reference MLP (theus2025) needs that MLP's pairs
matched by weight matching too. `CLAIM_NEEDS` narrows that to what the selected claims use; a
claim it does not list gets everything its family can need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from .lab import SEARCHES
from .scales import reference_mlp

if TYPE_CHECKING:
    import pytest

    from .jobs import Job
    from .lab import Lab, Setting
    from .scales import Scale

MAIN, TWO_LAYER = "main", "two-layer"
TRIPLES, MERGES, TRANSITIVE = "triples", "merges", "transitive"  # needs beyond a search of every pair
REFERENCE = "reference-mlp"  # the scale's reference MLP (scales.reference_mlp), its pairs matched by WM
EVERYTHING = frozenset({*SEARCHES, TRIPLES, MERGES, TRANSITIVE, REFERENCE})

# Which family of settings a claim measures and which of the lab's searches it uses there.
CLAIM_NEEDS: dict[str, tuple[str, frozenset]] = {
    "ainsworth2023-wm-barrier": (MAIN, frozenset({"wm"})),
    "ainsworth2023-am-barrier": (MAIN, frozenset({"am"})),
    "ainsworth2023-width": (MAIN, frozenset({"wm", "am"})),
    "csiszarik2023-combinability": (MAIN, frozenset({"wm"})),
    "csiszarik2023-non-vacuous": (MAIN, frozenset({"wm"})),
    "csiszarik2023-robustness": (MAIN, frozenset({"wm"})),
    "csiszarik2023-transitivity": (MAIN, frozenset({"wm", TRANSITIVE})),
    "ito2024-singular-values": (MAIN, frozenset()),
    "ito2024-l2-distance": (MAIN, frozenset({"wm"})),
    "ito2024-sv-alignment": (MAIN, frozenset({"wm", "ste", "ste-gr"})),
    "ito2024-ste-alignment": (MAIN, frozenset({"wm", "ste", "ste-gr"})),
    "ito2024-merge-wm-vs-ste": (MAIN, frozenset({TRIPLES, MERGES})),
    "ito2024-width": (MAIN, frozenset({"wm", "am"})),
    "ferbach2024-barrier-vs-width": (TWO_LAYER, frozenset({"wm"})),
    "ferbach2024-dimension-vs-barrier": (TWO_LAYER, frozenset({"wm"})),
    "theus2025-transformer-barrier": (MAIN, frozenset({"wm", REFERENCE})),
}

SettingKey = tuple[str, str, int]  # (arch, dataset, width)
Search = tuple[str, int, int]  # (method, seed a, seed b): b permuted onto a


def searches_of(scale: "Scale", key: SettingKey, needs: Iterable[str]) -> list[Search]:
    """The searches a setting's claims ask for, given what they need (Git Re-Basin's STE only where
    the scale runs it, `Scale.runs_ste_gr`)."""
    from .measurements.csiszarik2023 import third_model
    from .measurements.ito2024 import merge_searches, model_triples, three_model_searches

    needs = set(needs)
    pairs = scale.pairs
    out = [(m, a, b) for m in SEARCHES if m in needs for a, b in pairs]
    if TRIPLES in needs:  # ito2024.three_models: b and c onto the anchor a by each search
        out += three_model_searches(model_triples(pairs, scale.n_models))
    if MERGES in needs:  # ito2024.merged: the set's members onto its anchor
        out += merge_searches(merges_of(scale, key))
    if TRANSITIVE in needs:  # csiszarik2023.transitivity: both members of pair i onto its third model
        out += [("wm", third_model(pairs, i), s) for i, pair in enumerate(pairs) for s in pair]
    return [x for x in dict.fromkeys(out) if x[0] != "ste-gr" or scale.runs_ste_gr(key[0])]


def merges_of(scale: "Scale", key: SettingKey) -> dict[int, list[list[int]]]:
    """The setting's merge sets (ito2024.merge_sets over its run's merge sizes)."""
    from .measurements.ito2024 import merge_sets

    return merge_sets(scale.pairs, scale.n_models, scale.run(key[0], key[1]).merge_sizes)


@dataclass
class Plan:
    """Per setting: the model seeds and the searches the selected claims need."""

    needs: dict[SettingKey, frozenset]
    scale: "Scale"

    def settings(self, lab: "Lab") -> list["Setting"]:
        return [lab.setting(*key) for key in self.needs]

    def seeds(self, key: SettingKey) -> list[int]:
        pair_seeds = [s for p in self.scale.pairs for s in p]
        return sorted(set(pair_seeds) | {s for _, a, b in self._searches(key) for s in (a, b)}
                      | {s for ms in self._merges(key) for s in ms})

    def _searches(self, key: SettingKey) -> list[Search]:
        return searches_of(self.scale, key, self.needs[key])

    def models_by_setting(self, lab: "Lab") -> list[tuple["Setting", list[int]]]:
        return [(lab.setting(*key), self.seeds(key)) for key in self.needs]

    def search_list(self, lab: "Lab") -> list[tuple["Setting", str, int, int]]:
        """Every search, the slow ones (STE) first, so that a cluster ends them early."""
        out = [(lab.setting(*key), m, a, b) for key in self.needs for m, a, b in self._searches(key)]
        slow_first = {"ste": 0, "ste-gr": 1, "am": 2, "wm": 3}
        return sorted(out, key=lambda t: slow_first.get(t[1], 0))

    def _merges(self, key: SettingKey) -> list[tuple[int, ...]]:
        """The model sets merged by MergeMany (ito2024.merged: every merge set)."""
        if MERGES not in self.needs[key]:
            return []
        return [tuple(ms) for sets in merges_of(self.scale, key).values() for ms in sets]

    def jobs(self, lab: "Lab") -> list["Job"]:
        """Every job (models first: the searches and merges depend on them), without duplicates."""
        from .jobs import merge_job, search_job, train_job

        jobs = [train_job(s, seed) for s, seeds in self.models_by_setting(lab) for seed in seeds]
        jobs += [search_job(s, m, a, b) for s, m, a, b in self.search_list(lab)]
        jobs += [merge_job(lab.setting(*key), seeds) for key in self.needs for seeds in self._merges(key)]
        return list(dict.fromkeys(jobs))

    def __len__(self) -> int:
        return sum(len(self.seeds(k)) + len(self._searches(k)) + len(self._merges(k)) for k in self.needs)

    def add(self, key: SettingKey, needs: Iterable[str]) -> None:
        needs = frozenset(needs)
        self.needs[key] = self.needs.get(key, frozenset()) | (needs - {REFERENCE})
        if REFERENCE in needs:
            reference = reference_mlp(self.scale)
            self.needs[reference] = self.needs.get(reference, frozenset()) | {"wm"}


def _two_layer_settings(scale: "Scale", variation: str | None) -> list[SettingKey]:
    """The two-layer family's settings a Ferbach et al. claim test measures: the base run at every
    width (barrier vs width), or a variation's runs at their shared widths (Figure 2: the largest)."""
    from .measurements.ferbach2024 import VARIATIONS, shared_widths, variation_runs
    from .scales import two_layer_family

    if variation is None:
        base, _ = two_layer_family(scale)
        return [(base.arch, base.dataset, w) for w in base.widths]
    if variation not in VARIATIONS:  # all of the family
        keys = _two_layer_settings(scale, None) + [k for v in VARIATIONS for k in _two_layer_settings(scale, v)]
        return list(dict.fromkeys(keys))
    runs = variation_runs(scale, variation)
    widths = shared_widths(runs)
    widths = (max(widths),) if variation == "lr" else widths
    return [(r.arch, r.dataset, w) for r in runs for w in widths]


def _needs(claim_id: str) -> tuple[str, frozenset]:
    return CLAIM_NEEDS.get(claim_id, (None, EVERYTHING))


def for_claims(scale: "Scale", claim_ids: Sequence[str] | None = None) -> Plan:
    """The plan of a run of these claims (default: all of the catalogue) on the scale's settings:
    `lmc-claims prebuild`."""
    from .catalogue import CLAIMS

    plan = Plan({}, scale)
    for claim_id in claim_ids or CLAIMS:
        family, needs = _needs(claim_id)
        if family in (MAIN, None):
            for r in scale.runs:
                for w in r.widths:
                    plan.add((r.arch, r.dataset, w), needs)
        if family in (TWO_LAYER, None) and scale.extra_runs:
            for key in _two_layer_settings(scale, "all"):
                plan.add(key, needs & set(SEARCHES))
    return plan


def for_items(scale: "Scale", items: Sequence["pytest.Item"]) -> Plan:
    """The plan of the collected claim tests (skipped ones left out): each test's setting(s) from
    its parameters, what it needs from its claim."""
    from .session import claim_ids_of, node_params

    plan = Plan({}, scale)
    for item in items:
        if "claims" not in item.keywords or item.get_closest_marker("skip") is not None:
            continue
        params = node_params(item)
        for claim_id in claim_ids_of(item):
            family, needs = _needs(claim_id)
            if "variation" in params:
                keys = _two_layer_settings(scale, params["variation"])
            elif family == TWO_LAYER:
                keys = _two_layer_settings(scale, None)
            elif "width" in params:
                keys = [(params["arch"], params["dataset"], params["width"])]
            elif "arch" in params:
                keys = [(params["arch"], params["dataset"], w) for w in scale.run(params["arch"], params["dataset"]).widths]
            else:  # a claim test parametrised in a way this plan does not know: nothing up front
                continue
            for key in keys:
                plan.add(key, needs if family != TWO_LAYER else needs & set(SEARCHES))
    return plan
