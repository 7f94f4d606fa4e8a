"""Permutation searches: weight matching, straight-through estimator, merging many."""
