"""The `lmc-claims` command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from .errors import LmcClaimsError


def catalogue() -> dict:
    from .catalogue import CLAIMS
    from .data import DATASETS
    from .models import ARCHITECTURES
    from .scales import SCALES

    return {
        "claims": [
            {"id": c.id, "paper": c.paper, "section": c.section, "statement": c.statement,
             "criteria": [{"criterion": k.text(), "source": k.source} for k in c.criteria], "min_seeds": c.min_seeds}
            for c in CLAIMS.values()
        ],
        "architectures": [{"name": a.name, "description": a.description} for a in ARCHITECTURES.values()],
        "datasets": [{"name": n, "description": (f.__doc__ or "").strip()} for n, f in DATASETS.items()],
        "scales": [dict(asdict(s), ste=asdict(s.ste), n_models=s.n_models) for s in SCALES.values()],
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
        print(f"  {s['name']:<28} widths {s['widths']}, {s['epochs']} epochs, {s['n_pairs']} pairs, "
              f"merge sizes {s['merge_sizes']} x {s['merge_sets']} sets")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmc-claims", description="Paper claims on linear mode connectivity as pytest claim tests. "
                                     "Run the claims with `pytest -m claims`.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="the claims, architectures, datasets and scales that exist")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_list)
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
