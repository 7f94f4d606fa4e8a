"""Root conftest: hypothesis profiles only (everything claim-related lives in the plugin)."""

import os

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # `pip install -e .` without the test extra: the claims need no hypothesis
    settings = None

if settings is not None:
    # torch code is slow to warm up: no deadlines anywhere.
    settings.register_profile("dev", max_examples=20, deadline=None)
    # hypothesis loads its own "ci" profile when CI is set; extend it rather than replace it.
    settings.register_profile("ci", parent=settings.get_profile("ci"), max_examples=25, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("thorough", max_examples=500, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_ignore_collect(collection_path, config):
    # `pip install -e .` (no test extra) is enough for `pytest -m claims`: the unit tests, which
    # need hypothesis, are then left uncollected. A plain `pytest` still collects them and says
    # what is missing.
    from lmc_claims.plugin import claims_selected

    tests = config.rootpath / "tests"
    if settings is None and claims_selected(config) and (collection_path == tests or tests in collection_path.parents):
        return True
    return None
