"""Property checks of the exact maths for your own models, for your own test suite:

    from hypothesis import given
    from lmc_claims.testing import assert_symmetry, assert_recovers_planted_permutation, permutations

    def test_my_spec_is_a_symmetry():
        assert_symmetry(MyNet(), torch.randn(8, 3, 32, 32))          # derives the spec, draws permutations

    @given(perms=permutations(spec, params))                          # or draw them yourself
    def test_...(perms): ...

A failed check raises `SymmetryError` (an AssertionError) naming the permutation, the parameters it
acts on and the size of the difference. `examples/test_my_model.py` is a documented example; this
project's own property tests use the same module.
"""

from .checks import (TOLERANCES, SymmetryError, assert_keeps_singular_values, assert_recovers_planted_permutation,
                     assert_symmetry, check_symmetry, spec_coverage)
from .strategies import permutations, small_models

__all__ = ("TOLERANCES", "SymmetryError", "assert_keeps_singular_values", "assert_recovers_planted_permutation",
           "assert_symmetry", "check_symmetry", "permutations", "small_models", "spec_coverage")
