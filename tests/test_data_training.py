import pytest
import torch

from lmc_claims.data import load_dataset
from lmc_claims.device import resolve_device
from lmc_claims.errors import LmcClaimsError
from lmc_claims.models.registry import get_architecture
from lmc_claims.scales import get_scale
from lmc_claims.training import Recipe, TrainConfig, train, train_many


def test_mnist5k_is_real_split_deterministically_and_standardised():
    d = load_dataset("mnist5k")
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert d.num_classes == 10 and set(d.y_train.unique().tolist()) == set(range(10))
    assert abs(d.x_train.mean().item()) < 1e-3
    assert d.fingerprint() == load_dataset("mnist5k").fingerprint()


def test_same_config_gives_bitwise_identical_weights():
    data = load_dataset("digits")
    cfg = TrainConfig(dataset="digits", width=16, seed=3, recipe=Recipe(epochs=2))
    a = train(cfg, data, torch.device("cpu"))
    b = train(cfg, data, torch.device("cpu"))
    c = train(TrainConfig(dataset="digits", width=16, seed=4, recipe=Recipe(epochs=2)), data, torch.device("cpu"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.weight"], c["layers.0.weight"])


def test_models_trained_at_once_equal_models_trained_alone():
    # Concurrent training shares torch's process-wide generator and thread setting: each model
    # must still be bitwise the one its config gives alone, for Adam and for plain SGD.
    data = load_dataset("digits")
    configs = [TrainConfig(dataset="digits", width=16, seed=s, recipe=Recipe(epochs=2)) for s in range(3)]
    configs += [TrainConfig(arch="mlp-d1", dataset="digits", width=32, seed=s, recipe=Recipe(epochs=2, lr=0.1, optimizer="sgd"))
                for s in range(2)]
    threads = torch.get_num_threads()
    together = train_many(configs, data, torch.device("cpu"), workers=2)
    assert torch.get_num_threads() == threads
    for cfg, sd in zip(configs, together):
        alone = train(cfg, data, torch.device("cpu"))
        assert all(torch.equal(alone[k], sd[k]) for k in alone), cfg.label()


@pytest.mark.parametrize("call, match", [
    (lambda: load_dataset("imagenet"), "mnist5k"),
    (lambda: get_architecture("transformer"), "mlp"),
    (lambda: get_scale("huge"), "smoke"),
    (lambda: resolve_device("tpu"), "auto"),
])
def test_unknown_names_list_the_valid_ones(call, match):
    with pytest.raises(LmcClaimsError, match=match):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_but_absent_names_the_fix():
    with pytest.raises(LmcClaimsError, match="--claims-device auto"):
        resolve_device("cuda")
