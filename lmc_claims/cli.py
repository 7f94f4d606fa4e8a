"""The `lmc-claims` command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from .errors import LmcClaimsError


def catalogue() -> dict:
    from .catalogue import CLAIMS
    from .data import DATASETS, describe
    from .models import ARCHITECTURES
    from .scales import SCALES

    return {
        "claims": [
            {"id": c.id, "paper": c.paper, "section": c.section, "statement": c.statement,
             "criteria": [{"criterion": k.text(), "source": k.source} for k in c.criteria], "min_seeds": c.min_seeds}
            for c in CLAIMS.values()
        ],
        "architectures": [{"name": a.name, "description": a.description} for a in ARCHITECTURES.values()],
        "datasets": [{"name": n, "description": describe(n)} for n in DATASETS],
        "scales": [asdict(s) for s in SCALES.values()],
    }


def cmd_list(args) -> int:
    cat = catalogue()
    if args.json:
        print(json.dumps(cat, indent=1))
        return 0
    print("Claims:")
    for c in cat["claims"]:
        print(f"  {c['id']:<28} {c['paper']}, {c['section']}")
        print(f"  {'':<28} criteria: {'; '.join(k['criterion'] for k in c['criteria'])}")
    print("Architectures:")
    for a in cat["architectures"]:
        print(f"  {a['name']:<28} {a['description']}")
    print("Datasets:")
    for d in cat["datasets"]:
        print(f"  {d['name']:<28} {d['description']}")
    print("Scales (--claims-scale):")
    for s in cat["scales"]:
        runs = "; ".join(f"{r['arch']} on {r['dataset']} widths {tuple(r['widths'])} {r['recipe']['epochs']} epochs" for r in s["runs"])
        print(f"  {s['name']:<28} {runs}; {s['n_pairs']} pairs, {3 * s['n_pairs']} models per setting")
    return 0


def cmd_report(args) -> int:
    from .report import format_table, rebuild_report, summary_rows

    report = rebuild_report(Path(args.report_dir))
    for line in format_table(summary_rows(report), ("claim", "parameters", "verdict", "key figure vs criterion")):
        print(line)
    for warning in report["warnings"]:
        print(f"lmc-claims: warning: {warning}", file=sys.stderr)
    n_figures = sum(len(r.get("figures", [])) for r in report["claims"]) + sum(map(len, report["claim_figures"].values()))
    print(f"rebuilt {args.report_dir}: report.html, report.md, report.json and {n_figures} figures "
          f"from {sum(1 for r in report['claims'] if r.get('data_file'))} data files")
    return 0


def cmd_compare(args) -> int:
    from .report import format_table
    from .report.compare import HEADER, compare_reports, load_report, summary_line, table_rows

    a, b = load_report(Path(args.run_a)), load_report(Path(args.run_b))
    rows = compare_reports(a, b)
    for name, path, rep in (("A", args.run_a, a), ("B", args.run_b, b)):
        print(f"{name}: {path} (scale {rep.get('scale')}, commit {rep.get('git_commit')}, {rep.get('created')})")
    print()
    for line in format_table(table_rows(rows), HEADER):
        print(line)
    print()
    print(summary_line(rows))
    return 1 if any(r.regression for r in rows) else 0


def cmd_datasets(args) -> int:
    from .data import DATASETS, EMBEDDED, availability, data_root, describe, set_data_root

    if args.data_root:
        set_data_root(args.data_root)
    rows = []
    for name in DATASETS:
        problem = availability(name)
        rows.append({"name": name, "description": describe(name), "embedded": name in EMBEDDED,
                     "present": problem is None, "problem": problem})
    if args.json:
        print(json.dumps({"data_root": str(data_root().resolve()), "datasets": rows}, indent=1))
        return 0
    print(f"Data root: {data_root().resolve()} (--data-root, $LMC_CLAIMS_DATA or ./datasets)")
    for r in rows:
        state = "embedded" if r["embedded"] else ("present" if r["present"] else "MISSING")
        print(f"  {r['name']:<14} {state:<9} {r['description']}")
        if r["problem"]:
            print(f"  {'':<14} {'':<9} {r['problem']}")
    return 0


def cmd_prebuild(args) -> int:
    """Every model and matching the selected claims need, built into the cache (on a cluster with
    --claims-executor=dask), without running the claim tests: a batch job before `pytest -m claims`."""
    from .data import set_data_root
    from .device import resolve_device
    from .build.choose import make_executor
    from .lab import Lab
    from .options import Options, split_list
    from .plan import for_claims
    from .progress import Progress
    from .zoo import Zoo, default_cache_dir

    if args.claims_data_root:
        set_data_root(args.claims_data_root)
    cs = Options(scale_name=args.claims_scale, archs=split_list(args.claims_arch), claim_ids=split_list(args.claims_id),
                       device_name=args.claims_device, cache_dir=None, report_dir=Path("."),
                       datasets=split_list(args.claims_dataset), data_root=args.claims_data_root, quiet=args.quiet,
                       is_worker=False, seed_start=args.claims_seeds)
    from .catalogue import get_claim

    for claim_id in cs.claim_ids or ():
        get_claim(claim_id)
    scale = cs.scale()
    progress = Progress(quiet=args.quiet, write=lambda line: print(line, flush=True))
    zoo = Zoo(Path(args.claims_cache_dir).expanduser() if args.claims_cache_dir else default_cache_dir())
    device = resolve_device(args.claims_device)
    executor = make_executor(args.claims_executor, device, scheduler=args.claims_scheduler, progress=progress,
                             shared_cache_root=zoo.root.resolve() if args.claims_shared_cache else None)
    try:
        lab = Lab(scale, device, zoo, progress, executor)
        plan = for_claims(scale, cs.claim_ids)
        looks = plan.looks()
        samples = looks[min(max(args.look, 1), len(looks)) - 1]
        summary = executor.prebuild(plan.at_look(samples).jobs(lab), lab.builds)
    except KeyboardInterrupt:
        print("lmc-claims: interrupted; outstanding jobs cancelled (the cache holds what was finished)", file=sys.stderr)
        return 130
    finally:
        executor.close()
    print(f"lmc-claims: {summary.line()}; cache {zoo.root}")
    return 1 if summary.failed else 0


def cmd_plan(args) -> int:
    """The jobs a claims run at this scale will build, look by look, and the expected hours."""
    import torch

    from .estimate import summary
    from .lab import Lab
    from .options import Options, split_list
    from .plan import for_claims
    from .zoo import Zoo

    cs = Options(scale_name=args.claims_scale, archs=split_list(args.claims_arch), claim_ids=split_list(args.claims_id),
                 device_name="cpu", cache_dir=None, report_dir=Path("."), datasets=split_list(args.claims_dataset),
                 data_root=None, quiet=True, is_worker=False, seed_start=args.claims_seeds)
    scale = cs.scale()
    import tempfile

    lab = Lab(scale, torch.device("cpu"), Zoo(tempfile.mkdtemp(prefix="lmc-claims-plan-")))
    lab.builds.load_data = False  # counted and costed, not built: the data need not be there yet
    print(f"lmc-claims plan, scale {scale.name}:")
    for line in summary(for_claims(scale, cs.claim_ids), lab):
        print(f"  {line}")
    return 0


def selection_args(p: argparse.ArgumentParser) -> None:
    """The options that say which claims run where, shared by `plan` and `prebuild`."""
    p.add_argument("--claims-scale", default="ci", help="smoke, ci (default), paper or paper-dry")
    p.add_argument("--claims-arch", "--arch", default=None, metavar="NAME[,NAME]", help="architectures instead of the scale's")
    p.add_argument("--claims-dataset", default=None, metavar="NAME[,NAME]", help="datasets instead of the scale's")
    p.add_argument("--claims-id", default=None, metavar="ID[,ID]", help="only what these claims need")
    p.add_argument("--claims-seeds", type=int, default=0, metavar="START", help="the first model seed (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmc-claims", description="Paper claims on linear mode connectivity as pytest claim tests. "
                                     "Run the claims with `pytest -m claims`.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="the claims, architectures, datasets and scales that exist")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("datasets", help="which datasets are present in the data root and which are missing")
    p.add_argument("--data-root", default=None, help="the data root to inspect (default: $LMC_CLAIMS_DATA or ./datasets)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_datasets)
    p = sub.add_parser("report", help="rebuild report.json, report.md, report.html and figures/ from the data/*.nc files "
                       "of a report directory (no training)")
    p.add_argument("report_dir", nargs="?", default="reports", metavar="REPORT_DIR",
                   help="a directory written by `pytest -m claims` (default: reports)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("compare", help="which verdicts and key figures changed between two report directories; "
                       "exit status 1 when a claim that passed in RUN_A fails in RUN_B")
    p.add_argument("run_a", metavar="RUN_A", help="the earlier report directory")
    p.add_argument("run_b", metavar="RUN_B", help="the later report directory")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("plan", help="the models, searches and merges a claims run at a scale will build, look by look, "
                       "and the expected hours")
    selection_args(p)
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("prebuild", help="train every model and run every matching the selected claims need, into the "
                       "cache, without running the claim tests (on a Dask cluster with --claims-executor=dask)")
    selection_args(p)
    p.add_argument("--claims-device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--claims-cache-dir", default=None, metavar="DIR",
                   help="the model cache (default: $LMC_CLAIMS_CACHE or ~/.cache/lmc-claims)")
    p.add_argument("--claims-data-root", default=None, metavar="DIR", help="where downloaded datasets live")
    p.add_argument("--look", type=int, default=1, metavar="K",
                   help="build up to the K-th look of the sequential design (default 1: the first samples; "
                   "later looks are what undecided claim tests ask for)")
    p.add_argument("--claims-executor", default="local", help="local (default: this process) or dask")
    p.add_argument("--claims-scheduler", default=None, metavar="ADDRESS",
                   help="the Dask scheduler (default: $LMC_CLAIMS_SCHEDULER; neither: a LocalCluster on this machine)")
    p.add_argument("--claims-shared-cache", action="store_true", help="Dask workers write the cache themselves")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per job")
    p.set_defaults(func=cmd_prebuild)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LmcClaimsError as e:
        print(f"lmc-claims: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
