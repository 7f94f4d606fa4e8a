"""lmc-claims: claims about linear mode connectivity as executable pytest claim tests, and the
matching behind them as a library (`import lmc_claims as lc`; see `api.py`).

The library's names are imported on first use, so that `import lmc_claims` (which pytest does for
the plugin in every run) stays free of torch.
"""

from .version import __version__

API = ("derive_spec", "match", "permute", "interpolate", "merge", "Permutation")
__all__ = ("__version__", *API)


def __getattr__(name: str):
    if name in API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'lmc_claims' has no attribute {name!r}")
