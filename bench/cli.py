"""The command line: ``python -m bench {run,report,list}``.

    python -m bench run CONFIG.toml [--out DIR] [--workers N] [--fresh]
    python -m bench report DIR
    python -m bench list

``run`` resumes: cells already finished in DIR are not recomputed.  The
default DIR is ``results/<config name>``.  (``peers``, comparing with JAX and
PyTorch implementations, is issue 5.)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

__all__ = ["main", "build_parser"]


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m bench", description="evidence-bench harness")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a sweep configuration (resumes finished cells)")
    r.add_argument("config", help="TOML sweep configuration (see bench/configs/)")
    r.add_argument("--out", default=None, help="results directory (default: results/<config name>)")
    r.add_argument("--workers", type=int, default=1, help="local worker processes (default 1: sequential)")
    r.add_argument("--fresh", action="store_true", help="recompute cells already finished in --out")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")

    rep = sub.add_parser("report", help="figures, report.html and report.md from a results directory")
    rep.add_argument("dir", help="results directory written by `run`")

    sub.add_parser("list", help="problems, q presets, estimators, gradient methods and objectives")
    return parser


def _cmd_run(args):
    from .config import load_config
    from .runner import run

    sweeps = load_config(args.config)
    out = Path(args.out) if args.out else Path("results") / sweeps[0].name
    t0 = time.perf_counter()
    df = run(sweeps, out=out, workers=args.workers, progress=False if args.no_progress else None, fresh=args.fresh)
    elapsed = time.perf_counter() - t0
    skipped = df.attrs.get("skipped", [])
    print(f"{len(df)} cells in {out / 'benchmarks.parquet'} ({elapsed:.1f} s)")
    if skipped:
        print(f"{len(skipped)} cells skipped (the estimator refuses them):")
        for reason, n in Counter(s["reason"] for s in skipped).most_common():
            print(f"  {n:4d} x {reason}")
    return 0


def _cmd_report(args):
    from reports.report import build_report

    paths = build_report(args.dir)
    for kind, path in paths.items():
        if kind != "figures":
            print(f"{kind}: {path}")
    print(f"figures: {len(paths['figures'])} in {Path(args.dir) / 'figures'}")
    return 0


def _cmd_list(args):
    from .presets import PRESET_HELP
    from .sweep import ESTIMATORS, FAMILIES, METHODS, OBJECTIVES

    print("problems (family: parameters; [problems.<label>] family = ..., plus x_seed):")
    for name, (_, required, optional, text) in FAMILIES.items():
        opt = ", ".join(f"{k}={v}" for k, v in optional.items())
        print(f"  {name}: {', '.join(required)}{', ' + opt if opt else ''}\n      {text}")
    print("\nq presets (base[+modifier...]; a leading modifier starts from posterior):")
    for name, text in PRESET_HELP.items():
        print(f"  {name:12s} {text}")
    print("\nestimators:")
    for name, text in ESTIMATORS.items():
        print(f"  {name:20s} {text}")
    print("\ngradient methods: " + ", ".join(METHODS))
    print("gradient objectives: " + ", ".join(OBJECTIVES))
    print("\nexecutors: local (sequential), local with --workers N (process pool)")
    return 0


def main(argv=None):
    """Entry point; returns the exit status (2 for a ValueError: bad config or input)."""
    args = build_parser().parse_args(argv)
    handler = {"run": _cmd_run, "report": _cmd_report, "list": _cmd_list}[args.command]
    try:
        return handler(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `python -m bench list | head`
        sys.stderr.close()
        return 0
