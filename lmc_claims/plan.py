"""What a claims run will build: the models, permutation searches and merges, per setting, so
that all of it can be submitted up front (an executor's `prebuild`) and the claim tests find a
warm cache.

The unit is the setting. Each claim declares what its tests need (`Claim.needs`, in the
catalogue): the family of settings it measures (the scale's runs, or its two-layer family) and
what it uses there: matching methods of every pair, Ito et al.'s triples and merge sets, the
transitivity claim's third models, the reference MLP (designs.py holds these designs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from .designs import Search, merge_searches, merge_sets, model_triples, three_model_searches, transitive_searches, two_layer_settings
from .judging import MAIN, MERGES, REFERENCE, TRANSITIVE, TRIPLES, TWO_LAYER
from .names import METHODS
from .scales import reference_mlp

if TYPE_CHECKING:
    from .build.jobs import Job
    from .lab import Lab
    from .scales import Scale

SettingKey = tuple[str, str, int]  # (arch, dataset, width)


def searches_of(scale: "Scale", key: SettingKey, needs: Iterable[str], pairs=None) -> list[Search]:
    """The searches a setting's claims ask for over these sample pairs (default: the first look's),
    given what they use (Git Re-Basin's STE only where the scale runs it, `Scale.runs_ste_gr`)."""
    needs = set(needs)
    pairs = scale.pairs if pairs is None else pairs
    out = [(m, a, b) for m in METHODS if m in needs for a, b in pairs]
    if TRIPLES in needs:  # ito2024.three_models: b and c onto the anchor a by each method
        out += three_model_searches(model_triples(pairs, scale.thirds(pairs)))
    if MERGES in needs:  # ito2024.merged: the set's members onto its anchor
        out += merge_searches(merges_of(scale, key, pairs))
    if TRANSITIVE in needs:  # csiszarik2023.transitivity: both members of pair i onto its own third model
        out += transitive_searches(pairs, scale.thirds(pairs))
    return [x for x in dict.fromkeys(out) if x[0] != "ste-gr" or scale.runs_ste_gr(key[0])]


def merges_of(scale: "Scale", key: SettingKey, pairs=None) -> dict[int, list[list[int]]]:
    """The setting's merge sets (designs.merge_sets over its run's merge sizes)."""
    pairs = scale.pairs if pairs is None else pairs
    return merge_sets(model_triples(pairs, scale.thirds(pairs)), scale.run(key[0], key[1]).merge_sizes)


@dataclass
class Plan:
    """Per setting: what the selected claims use there, at one look of the sequential design: the
    first by default (`samples` = n_pairs); a later look's plan holds its larger sample, so the jobs
    new at that look are its jobs less the earlier look's."""

    needs: dict[SettingKey, frozenset]
    scale: "Scale"
    samples: int | None = None  # sample pairs at this look (None: the scale's n_pairs)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return self.scale.sample_pairs(self.samples)

    def at_look(self, samples: int) -> "Plan":
        return Plan(self.needs, self.scale, samples)

    def seeds(self, key: SettingKey) -> list[int]:
        pair_seeds = [s for p in self.pairs for s in p]
        return sorted(set(pair_seeds) | {s for _, a, b in self.searches(key) for s in (a, b)}
                      | {s for ms in self.merges(key) for s in ms})

    def searches(self, key: SettingKey) -> list[Search]:
        return searches_of(self.scale, key, self.needs[key], self.pairs)

    def merges(self, key: SettingKey) -> list[tuple[int, ...]]:
        """The model sets merged by MergeMany (ito2024.merged: every merge set)."""
        if MERGES not in self.needs[key]:
            return []
        return [tuple(ms) for sets in merges_of(self.scale, key, self.pairs).values() for ms in sets]

    def jobs(self, lab: "Lab") -> list["Job"]:
        """Every job: models first (the searches and merges depend on them), then the searches, the
        slow ones (STE) first so that a cluster ends them early, then the merges; no duplicates."""
        b = lab.builds
        refs = {key: lab.ref(*key) for key in self.needs}
        jobs = [b.train_job(refs[key], seed) for key in self.needs for seed in self.seeds(key)]
        slow_first = {"ste": 0, "ste-gr": 1, "am": 2, "wm": 3}
        searches = [(key, m, x, y) for key in self.needs for m, x, y in self.searches(key)]
        jobs += [b.search_job(refs[key], m, x, y) for key, m, x, y in sorted(searches, key=lambda t: slow_first.get(t[1], 0))]
        jobs += [b.merge_job(refs[key], seeds) for key in self.needs for seeds in self.merges(key)]
        return list(dict.fromkeys(jobs))

    def looks(self) -> list[int]:
        """The sample sizes of every look any test may take (`Scale.looks`)."""
        return sorted(set(self.scale.looks(True)) | set(self.scale.looks(False)))

    def jobs_by_look(self, lab: "Lab") -> list[tuple[int, list["Job"]]]:
        """(samples, the jobs new at that look) for every look: what an undecided test asks for next."""
        out, seen = [], set()
        for n in self.looks():
            new = [j for j in self.at_look(n).jobs(lab) if j not in seen]
            seen.update(new)
            out.append((n, new))
        return out

    def __len__(self) -> int:
        return sum(len(self.seeds(k)) + len(self.searches(k)) + len(self.merges(k)) for k in self.needs)

    def add(self, key: SettingKey, uses: Iterable[str]) -> None:
        uses = frozenset(uses)
        self.needs[key] = self.needs.get(key, frozenset()) | (uses - {REFERENCE})
        if REFERENCE in uses:
            reference = reference_mlp(self.scale)
            self.needs[reference] = self.needs.get(reference, frozenset()) | {"wm"}

    def add_claim(self, claim, keys: Sequence[SettingKey]) -> None:
        """The claim's needs on these settings (a two-layer claim uses matching methods only)."""
        uses = set(claim.needs.uses)
        for key in keys:
            self.add(key, uses & set(METHODS) if claim.needs.family == TWO_LAYER else uses)


def main_settings(scale: "Scale") -> list[SettingKey]:
    return [(r.arch, r.dataset, w) for r in scale.runs for w in r.widths]


def for_claims(scale: "Scale", claim_ids: Sequence[str] | None = None) -> Plan:
    """The plan of a run of these claims (default: all of the catalogue) on the scale's settings:
    `lmc-claims prebuild`."""
    from .catalogue import CLAIMS, get_claim

    plan = Plan({}, scale)
    for claim_id in claim_ids or CLAIMS:
        claim = get_claim(claim_id)
        family = claim.needs.family
        if family in (MAIN, None):
            plan.add_claim(claim, main_settings(scale))
        if family in (TWO_LAYER, None) and scale.extra_runs:
            keys = two_layer_settings(scale, "all")
            for key in keys:
                plan.add(key, set(claim.needs.uses) & set(METHODS))
    return plan
