"""What every job and measurement of one setting works with: its data on the device, the
evaluation splits, the template model and its permutation spec. Made from a `SettingRef` alone,
so that a cluster worker builds exactly what the client builds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data import TensorData
from ..metrics.interpolation import has_batchnorm
from ..models.registry import permutation_spec
from ..permutation.spec import PermutationSpec
from ..training import make_model
from .jobs import SettingRef


@dataclass(frozen=True, eq=False)
class Setup:
    """One architecture on one dataset at one width, ready to train, search and evaluate."""

    ref: SettingRef
    data: TensorData
    eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]]  # "train", "test" -> (x, y)
    bn_data: torch.Tensor | None  # training inputs for BatchNorm statistics, None without BN
    template: nn.Module  # the architecture, evaluated with functional_call
    spec: PermutationSpec


def on_device(data: TensorData, device: torch.device) -> TensorData:
    return TensorData(data.name, *(t.to(device) for t in (data.x_train, data.y_train, data.x_test, data.y_test)),
                      data.num_classes)


def make_setup(ref: SettingRef, device: torch.device, data: TensorData | None = None) -> Setup:
    """The setting's setup; `data`: its subset already on the device (default: loaded here)."""
    data = data if data is not None else on_device(ref.data.load(), device)
    n = ref.run.n_eval_train
    eval_sets = {"train": (data.x_train[:n], data.y_train[:n]), "test": (data.x_test, data.y_test)}
    template = make_model(ref.train_config(0), data).to(device)
    spec = permutation_spec(ref.arch, template, data.x_train[:2])
    bn_data = eval_sets["train"][0] if has_batchnorm(template) else None
    return Setup(ref, data, eval_sets, bn_data, template, spec)
