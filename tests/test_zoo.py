import pytest
import torch

from lmc_claims.errors import LmcClaimsError
from lmc_claims.zoo import CorruptEntryWarning, Zoo


def payload():
    return {"w": torch.arange(6.0).reshape(2, 3)}


def test_builds_once_then_reads_the_cache(tmp_path):
    zoo = Zoo(tmp_path)
    calls = []
    build = lambda: calls.append(1) or payload()
    p1, built1 = zoo.fetch("model", {"seed": 0}, "cpu", build)
    p2, built2 = Zoo(tmp_path).fetch("model", {"seed": 0}, "cpu", build)
    assert (built1, built2) == (True, False) and len(calls) == 1
    assert torch.equal(p1["w"], p2["w"])


def test_key_depends_on_config_and_device_kind(tmp_path):
    zoo = Zoo(tmp_path)
    keys = {zoo.key("model", {"seed": s}, d) for s in (0, 1) for d in ("cpu", "cuda")}
    assert len(keys) == 4
    assert zoo.key("model", {"a": 1, "b": 2}, "cpu") == zoo.key("model", {"b": 2, "a": 1}, "cpu")


@pytest.mark.parametrize("damage", ["truncate", "alter", "incomplete", "meta"])
def test_damaged_entry_is_detected_and_rebuilt(tmp_path, damage):
    zoo = Zoo(tmp_path)
    zoo.fetch("model", {"seed": 0}, "cpu", payload)
    entry = zoo.entry_dir("model", zoo.key("model", {"seed": 0}, "cpu"))
    weights = entry / "payload.pt"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:20])
    elif damage == "alter":
        data = bytearray(weights.read_bytes())
        data[-30] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "incomplete":
        (entry / "COMPLETE").unlink()
    else:
        (entry / "meta.json").write_text("{not json")
    with pytest.warns(CorruptEntryWarning, match=entry.name):
        p, built = zoo.fetch("model", {"seed": 0}, "cpu", payload)
    assert built and torch.equal(p["w"], payload()["w"])
    assert (entry / "COMPLETE").exists()


def test_interrupted_build_leaves_nothing_that_looks_complete(tmp_path):
    zoo = Zoo(tmp_path)

    def crash():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        zoo.fetch("model", {"seed": 0}, "cpu", crash)
    assert not zoo.entry_dir("model", zoo.key("model", {"seed": 0}, "cpu")).exists()
    _, built = zoo.fetch("model", {"seed": 0}, "cpu", payload)
    assert built


def test_unwritable_cache_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LmcClaimsError, match="--claims-cache-dir"):
        Zoo(blocker / "cache")
