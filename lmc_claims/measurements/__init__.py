"""Claim measurements, one module per paper (matching `lmc_claims/catalogue/<paper>.py`), plus
`shared` for what several papers use (curves, barriers, distances, width sweeps).

Each function takes a `lab.Setting` (or several) and the model pairs or sets it measures, and
returns an xarray Dataset whose first dimension holds the independent samples a verdict rests on.
"""
