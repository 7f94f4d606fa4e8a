"""Csiszárik, Kiss, Kőrösi-Szabó, Muntag, Papp, Varga 2023 (arXiv 2308.11511), robustness
(abstract; ../shared/CLAIMS.md item 13).

Statement: even with significant perturbations of the neuron matching, the combinations still
form a working model; performance degrades gradually with the size of the perturbation.
Protocol: the WM matching of B onto A is perturbed in every permutation by breaking a fraction f
of its matched pairs, f in (0, 0.1, 0.25, 0.5, 1): round(f n) units are chosen at random and their
partners rotated along a random cycle (a swap for two units), so exactly those units get a wrong
partner (f = 1 breaks every match). Each perturbed matching is combined with A by a uniform
hypercube c (one value per weight); a fresh perturbation and c per sample, test data
(scales.Scale.combination_samples per fraction and pair: smoke 2, ci 8, paper 32).
Metric: excess test loss E(f) (mean over samples minus the endpoints' mean loss) per f.
Criteria (ours; the paper gives no number): at f = 0.25, at least half of the fully broken
matching's excess loss is still removed, 1 - E(0.25) / E(1) >= 0.5; and E degrades gradually: on
no interval between adjacent fractions does it rise more than 2.5x faster than its average rate
(E(1) - E(0)) / 1, so a flat curve that then rises gradually passes and a cliff fails (the
Spearman correlation of f with the loss, the former criterion, is stored beside: it failed flat
curves, the very robustness the claim describes); one-sided 95% t-bounds over independent pairs.
Confirmed from the paper's public text: the robustness statement (abstract). Not confirmed: the
paper's perturbation procedure and the fractions it uses (full text unavailable offline).
"""

import pytest

from lmc_claims.measurements import csiszarik2023, shared
from lmc_claims.scales import FRACTIONS

pytestmark = pytest.mark.claims
CLAIM = "csiszarik2023-robustness"


def test_perturbed_matchings_still_combine(setting_key, claims_lab, verify):
    s, n = claims_lab.setting(*setting_key), claims_lab.scale.combination_samples
    verify(CLAIM, lambda pairs: csiszarik2023.robustness(s, pairs, n),
           config=lambda ds, pairs: {**s.config, "fractions": list(FRACTIONS),
                                     "samples_per_fraction": int(ds.attrs["samples_per_fraction"]),
                                     "n_test_eval": int(ds.attrs["n_test_eval"])},
           seeds=lambda ds, pairs: shared.seeds_of(pairs))
