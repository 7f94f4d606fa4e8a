import json
import subprocess
import sys

from lmc_claims.catalogue import CLAIMS
from lmc_claims.cli import main


def test_list_prints_claims_architectures_datasets_scales(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("Claims:", "Architectures:", "Datasets:", "Scales", "mlp", "mnist5k", "smoke", "paper", *CLAIMS):
        assert word in out


def test_list_json_is_machine_readable(capsys):
    assert main(["list", "--json"]) == 0
    cat = json.loads(capsys.readouterr().out)
    assert {c["id"] for c in cat["claims"]} == set(CLAIMS)
    assert [s["name"] for s in cat["scales"]] == ["smoke", "ci", "paper", "paper-dry"]


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "lmc_claims.cli", "list", "--json"], capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["architectures"][0]["name"] == "mlp"
