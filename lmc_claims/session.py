"""One claims run's state: its options (`options.Options`), the records of the claim tests judged
so far and the report written from them. `plugin.py` wires it into pytest.

Under pytest-xdist, workers attach each claim's JSON record to its test report (user_properties
travel with reports) and only the controller writes the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from .errors import LmcClaimsError
from .options import Options
from .params import CLAIM_PROPERTY, PARAMS_PROPERTY, RESULT_PROPERTY, claim_ids_of
from .verify import claim_fields, regime_reason


@dataclass
class ClaimsSession(Options):
    records: list[dict] = field(default_factory=list)
    report: dict | None = None
    error: str | None = None  # why the report could not be written, if it could not

    # -- the run's records and report --------------------------------------------------
    def add_report(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.failed and "claims" in report.keywords):
            record = record_from_report(report)
            if record is not None:
                if record["verdict"] == "error":
                    record.update(self.crash_context(record["id"], record["params"]))
                self.records.append(record)

    def crash_context(self, claim_id: str, params: dict) -> dict:
        """What a crashed claim test's record says beyond the error: the claim's statement and
        source, and whether its setting lies inside the paper's regime, as a judged one would."""
        from .catalogue import get_claim
        from .results import claim_context

        try:
            claim = get_claim(claim_id)
            outside = regime_reason(claim, self.scale(), params)
        except LmcClaimsError:
            return {}
        return {**claim_fields(claim), **claim_context(claim, outside, [])}

    def write_report(self) -> None:
        """The same code path as `lmc-claims report`: records are rebuilt from the netCDF files just
        written; the run adds what only it knows (node ids, notes, durations, crashed tests)."""
        if self.is_worker or not self.records:
            return
        from .report import write_report
        from .results import git_commit

        try:
            self.report = write_report(self.report_dir, self.records,
                                       {"scale": self.scale_name, "device": self.device_label or self.device_name,
                                        "git_commit": git_commit()})
        except LmcClaimsError as e:
            self.error = str(e)

    def deselect(self, items: list[pytest.Item]) -> list[pytest.Item]:
        """The claim tests --claims-id leaves out (every other test stays)."""
        if not self.claim_ids:
            return []
        wanted = set(self.claim_ids)
        return [i for i in items if "claims" in i.keywords and not claim_ids_of(i) & wanted]


def record_from_report(report: pytest.TestReport) -> dict | None:
    for name, value in report.user_properties:
        if name == RESULT_PROPERTY:
            record = json.loads(value)
            record["duration_s"] = round(report.duration, 3)
            return record
    if report.failed and "claims" in report.keywords:
        # Crashed before judging: still listed, so a broken claim cannot vanish from the report.
        props = dict(report.user_properties)
        claim = props.get(CLAIM_PROPERTY) or report.nodeid.split("::")[-1].split("[")[0]
        return {
            "nodeid": report.nodeid, "id": claim, "params": json.loads(props.get(PARAMS_PROPERTY, "{}")),
            "verdict": "error", "message": report.longreprtext[-2000:], "judgements": [], "n_seeds": 0,
        }
    return None


