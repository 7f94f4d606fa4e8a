"""The claims this package can verify, one module per paper (claim family), the property checks of
the exact maths first; and the claims other packages declare through the entry-point group
`lmc_claims.claims` (each names a module with a `CLAIMS` list).

Thresholds say where their numbers come from; "ours" marks a criterion this project chose
for a CPU-scale reproduction (fixed before measuring, never tuned to make a claim pass).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from ..errors import LmcClaimsError, unknown_name
from ..judging import Claim
from . import ainsworth2023, csiszarik2023, ferbach2024, ito2024, properties, theus2025

ENTRY_POINT_GROUP = "lmc_claims.claims"
BUILT_IN = (properties, ito2024, ainsworth2023, ferbach2024, csiszarik2023, theus2025)


def _external() -> tuple:
    """The claim modules other installed packages declare (entry points of ENTRY_POINT_GROUP)."""
    out = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            module = ep.load()
        except Exception as e:
            raise LmcClaimsError(f"The claims entry point {ep.name!r} ({ep.value}) could not be imported: "
                                 f"{type(e).__name__}: {e}", "fix or uninstall the package that declares it.") from None
        if not isinstance(getattr(module, "CLAIMS", None), (list, tuple)):
            raise LmcClaimsError(f"The claims entry point {ep.name!r} ({ep.value}) has no CLAIMS list.",
                                 "declare CLAIMS = [Claim(...), ...] in that module (lmc_claims.judging.Claim).")
        out.append(module)
    return tuple(out)


FAMILIES = BUILT_IN + _external()
CLAIMS: dict[str, Claim] = {}
for _family in FAMILIES:
    for _claim in _family.CLAIMS:
        if _claim.id in CLAIMS:
            raise LmcClaimsError(f"Claim id {_claim.id!r} is declared twice (again in {_family.__name__}).",
                                 "give every claim its own id.")
        CLAIMS[_claim.id] = _claim


def get_claim(claim_id: str) -> Claim:
    if claim_id not in CLAIMS:
        raise unknown_name("claim id", claim_id, CLAIMS)
    return CLAIMS[claim_id]
