"""The exact maths every verdict rests on, checked first for every verified architecture (built-in
or brought with --claims-arch): the permutation spec is a symmetry of the network, weight matching
finds a permutation planted in the network's own copy, and permutations keep singular values.

Thresholds are the dtype tolerances of `lmc_claims.testing.TOLERANCES` (float32 weights: 1e-4 of
the output's scale; a few hundred ulps of rounding reordered by the permutation), fixed before
measuring. A spec that fails stops every claim test of its architecture with an error naming the
permutation, the parameters and the size of the difference.
"""

from __future__ import annotations

from ..judging import Claim, Criterion, Needs, Published, Regime

PAPER = "lmc-claims property checks (the exact maths of permutation symmetry)"
ANY = Regime("any network with a permutation spec", "[identity of linear algebra]")
FLOAT32 = "lmc_claims.testing.TOLERANCES[float32]: 1e-4 of the output's scale (ours)"

CLAIMS = [
    Claim(
        id="spec-symmetry", needs=Needs.of(),
        paper=PAPER, section="permutation/spec.py; lmc_claims.testing.check_symmetry",
        statement="Permuting the network's hidden units as its permutation spec says (head and group blocks "
        "included) leaves its outputs unchanged, in eval mode and in train mode.",
        metric="largest output difference over hypothesis-drawn permutations, relative to the output's scale",
        criteria=(Criterion("symmetry_difference_eval_mode", "<=", 1e-4, source=FLOAT32, exact=True),
                  Criterion("symmetry_difference_train_mode", "<=", 1e-4, source=FLOAT32, exact=True)),
        regime=ANY,
        published=(Published("permuting hidden units leaves the function unchanged (Git Re-Basin §2; Entezari et al. "
                             "2022)", "paper", "symmetry_difference_eval_mode", 0.0, 1e-4),),
    ),
    Claim(
        id="spec-planted-recovery", needs=Needs.of(),
        paper=PAPER, section="matching/weight.py; lmc_claims.testing.assert_recovers_planted_permutation",
        statement="Weight matching of a permuted copy of the network onto the network brings the copy back to the "
        "network's exact weights.",
        metric="largest weight difference after matching the planted copy back, relative to the weights' scale",
        criteria=(Criterion("recovery_difference", "<=", 0.0,
                            source="exact: the planted permutation is the unique optimum for generic weights", exact=True),),
        regime=ANY,
        published=(Published("WM recovers a planted permutation in 3-4 passes (Git Re-Basin)", "secondary",
                             "recovery_difference", 0.0, 0.0),),
    ),
    Claim(
        id="spec-singular-values", needs=Needs.of(),
        paper=PAPER, section="Ito et al. 2024 Eq. (3); lmc_claims.testing.assert_keeps_singular_values",
        statement="A permutation leaves every weight's singular values unchanged.",
        metric="largest relative change of any weight's singular values under drawn permutations",
        criteria=(Criterion("max_rel_sv_change", "<=", 1e-9,
                            source="float64 SVD error ~eps * n * s_1, with margin (as ito2024-singular-values)", exact=True),),
        regime=ANY,
        published=(Published("singular values unchanged by every permutation (Ito et al. 2024, Eq. 3)", "paper",
                             "max_rel_sv_change", 0.0, 1e-9),),
    ),
]
