"""Root conftest: hypothesis profiles only (everything claim-related lives in the plugin)."""

import os

from hypothesis import HealthCheck, settings

# torch code is slow to warm up: no deadlines anywhere.
settings.register_profile("dev", max_examples=20, deadline=None)
# hypothesis loads its own "ci" profile when CI is set; extend it rather than replace it.
settings.register_profile("ci", parent=settings.get_profile("ci"), max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
