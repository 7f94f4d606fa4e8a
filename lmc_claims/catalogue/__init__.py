"""The claims this package can verify, one module per paper (claim family).

Thresholds say where their numbers come from; "ours" marks a criterion this project chose
for a CPU-scale reproduction (fixed before measuring, never tuned to make a claim pass).
"""

from __future__ import annotations

from ..judging import Claim
from ..errors import unknown_name
from . import ainsworth2023, csiszarik2023, ferbach2024, ito2024, theus2025

FAMILIES = (ito2024, ainsworth2023, ferbach2024, csiszarik2023, theus2025)

CLAIMS: dict[str, Claim] = {c.id: c for family in FAMILIES for c in family.CLAIMS}


def get_claim(claim_id: str) -> Claim:
    if claim_id not in CLAIMS:
        raise unknown_name("claim id", claim_id, CLAIMS)
    return CLAIMS[claim_id]
