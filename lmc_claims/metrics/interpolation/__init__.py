"""Linear interpolation between two models and the loss / accuracy barrier, in parts: the curves and
their barriers (`curves`), evaluating one model and resetting BatchNorm (`evaluation`), paths
(`paths`) and the batched engine they run on (`engine`). The names measurements use are here.
"""

from .curves import DEFAULT_LAMBDAS, Curve, Params, barrier, chord, chord_barrier, lerp
from .evaluation import EVAL_BATCH, endpoint, evaluate, has_batchnorm, model_copy, reset_bn_stats
from .paths import Line, interpolation_curve

__all__ = ("DEFAULT_LAMBDAS", "EVAL_BATCH", "Curve", "Line", "Params", "barrier", "chord", "chord_barrier", "endpoint",
           "evaluate", "has_batchnorm", "interpolation_curve", "lerp", "model_copy", "reset_bn_stats")
