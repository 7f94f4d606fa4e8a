"""Permutation symmetries declared as data, and how to apply them."""

from .apply import apply_permutation, identity_perms, random_perms
from .spec import PermutationSpec

__all__ = ["PermutationSpec", "apply_permutation", "identity_perms", "random_perms"]
