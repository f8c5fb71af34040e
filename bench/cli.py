"""The command line: ``python -m bench {run,report,list}``.

    python -m bench run CONFIG.toml [--out DIR] [--workers N | --scheduler ADDRESS] [--fresh]
    python -m bench report DIR [--claims [CLAIM ...]]
    python -m bench list
    python -m bench peers [--K 100 1000 ...] [--peers numpy jax torch] [--out CSV_or_DIR]

``run`` resumes: cells already finished in DIR are not recomputed.  The
default DIR is ``results/<config name>``.  ``report`` reports DIR's sweep, and
the lecture's claims (``bench.claims``) when DIR's claims.json holds them;
they do not depend on the sweep, so it computes them (a few minutes;
``EVIDENCE_BENCH_MODE=smoke``: smoke sizes) only with ``--claims``.  ``peers`` times the same work in
this project's kernels and in NumPy, JAX and PyTorch (see ``bench.peers``).
"""

from __future__ import annotations

import argparse
import importlib
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
    r.add_argument("--workers", type=int, default=None, help="local worker processes (default 1: sequential)")
    r.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the cells as Dask tasks: tcp://HOST:PORT (an existing scheduler) or local:N (a LocalCluster "
        "of N worker processes on 127.0.0.1); needs the [distributed] extra. Results are identical to the "
        "local executor's",
    )
    r.add_argument("--fresh", action="store_true", help="recompute cells already finished in --out")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")

    rep = sub.add_parser("report", help="figures, report.html and report.md from a results directory "
                         "(with the lecture's claims if it holds them, or with --claims)")
    rep.add_argument("dir", help="results directory written by `run`")
    rep.add_argument("--claims", nargs="*", default=None, metavar="CLAIM",
                     help="compute the lecture's claims DIR does not hold yet into it first (a few minutes; "
                          "EVIDENCE_BENCH_MODE=smoke for smoke sizes); they do not depend on DIR's sweep. "
                          "Names after --claims compute only those (`bench list` shows them)")

    sub.add_parser("list", help="problem families (built-in and entry points), q presets, estimators, "
                   "gradient methods and objectives")

    pe = sub.add_parser("peers", help="samples/s of our kernels against NumPy, JAX and PyTorch")
    pe.add_argument("--K", type=int, nargs="+", default=None, help="sample sizes (default 1e2 ... 1e6)")
    pe.add_argument("--peers", nargs="+", default=None, help="peers to run (default: numpy jax torch)")
    pe.add_argument("--repeats", type=int, default=5, help="timing rounds per cell: the main and discrete tables time their implementations in turns, "
                    "every round (median call reported); the sequential table, timed calls per cell")
    pe.add_argument("--out", default=None, help="also write the rows and ceilings: a .csv path, or a results "
                    "directory (peers.parquet, read by `python -m bench report`)")
    pe.add_argument("--no-limits", action="store_true", help="skip measuring the machine's limits")
    pe.add_argument("--sections", nargs="+", default=None,
                    help="which comparisons to run: main (the table above) and the names in bench.peers.SECTIONS "
                         "(default: all)")
    pe.add_argument(
        "--no-scaling", action="store_true", help="skip throughput vs K to 1e8, peak memory and the thread speed-up"
    )
    return parser


def _cmd_run(args):
    from .config import load_config
    from .runner import run

    from .dask_executor import DistributedUnavailable, parse_scheduler
    from .runner import SweepInterrupted

    if args.scheduler is not None:
        parse_scheduler(args.scheduler)  # a typo is an error before the config is even read
        if args.workers is not None:
            raise ValueError("workers: --workers is for the local executor; with --scheduler the workers are "
                             "the scheduler's (local:N starts N)")
    sweeps = load_config(args.config)
    out = Path(args.out) if args.out else Path("results") / sweeps[0].name
    t0 = time.perf_counter()
    try:
        df = run(sweeps, out=out, workers=args.workers, scheduler=args.scheduler,
                 progress=False if args.no_progress else None, fresh=args.fresh)
    except DistributedUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SweepInterrupted as exc:
        print(f"\n{exc}; run the same command again to resume (saved cells are not recomputed)",
              file=sys.stderr, flush=True)
        return 130
    elapsed = time.perf_counter() - t0
    skipped = df.attrs.get("skipped", [])
    print(f"{len(df)} cells in {out / 'benchmarks.parquet'} ({elapsed:.1f} s)")
    if args.scheduler is not None:
        print(f"executor: {df.attrs.get('executor')}")
    if skipped:
        print(f"{len(skipped)} cells skipped (the problem, its q or the estimator cannot serve them):")
        for reason, n in Counter(s["reason"] for s in skipped).most_common():
            print(f"  {n:4d} x {reason}")
    failed = df.attrs.get("failed", [])
    if failed:
        print(f"{len(failed)} cells FAILED (their estimator raised or returned a bad result; the reasons are in "
              f"{out / 'failed.json'}; every other cell is stored):", file=sys.stderr)
        by_kind = {}
        for f in failed:
            by_kind.setdefault((f["estimator"], f["kind"]), []).append(f)
        for (estimator, kind), fs in by_kind.items():
            print(f"  {len(fs):4d} x {estimator} {kind}: {fs[0]['reason']}", file=sys.stderr)
        return 1
    return 0


def _cmd_report(args):
    from reports.report import build_report, load_results

    from .claims import claims_mode, ensure_claims, read_claims

    load_results(args.dir)  # a results directory? (before the claims' minute of work)
    claims_json = Path(args.dir) / "claims.json"
    if args.claims is not None:
        mode = claims_mode()
        computed = ensure_claims(
            args.dir, mode,
            progress=lambda c: print(f"claim {c.id}: {c.verdict} ({c.seconds:.1f} s, {mode})", flush=True),
            ids=args.claims or None,
        )
        if computed:
            print(f"claims: computed {len(computed)} into {claims_json}")
        else:
            print(f"claims: all {len(read_claims(args.dir))} already in {claims_json}")
    elif claims_json.is_file():
        print(f"claims: {len(read_claims(args.dir))} from {claims_json} (--claims computes any missing)")
    else:
        print(f"claims: none in {args.dir}, so the report leaves them out; they do not depend on this sweep: "
              f"--claims computes them into it (a few minutes), and `pytest --benchmark-only` into results/")
    paths = build_report(args.dir)
    for kind, path in paths.items():
        if kind != "figures":
            print(f"{kind}: {path}")
    print(f"figures: {len(paths['figures'])} in {Path(args.dir) / 'figures'}")
    return 0


def _cmd_list(args):
    from .families import ENTRY_POINT_GROUP, available_families
    from .presets import PRESET_HELP
    from .registry import TARGETS, registered
    from .sweep import METHODS, OBJECTIVES

    print("problem families ([problems.<label>] family = NAME, its parameters, and optionally x_seed = N or "
          "x = [...]):")
    for name, fam in available_families():
        if isinstance(fam, ValueError):
            print(f"  {name}  [entry point, fails to load]\n      {fam}")
            continue
        defaults = ", ".join(f"{k}={v!r}" for k, v in fam.defaults.items()) or "none"
        print(f"  {name}  [{fam.source}]\n      {fam.description}\n      parameters: {fam.parameters or 'see its factory'}"
              f"; defaults: {defaults}")
    print(f'  any other: family = "package.module:Attribute" (built with Attribute.random(**params) if it has '
          f'random, else Attribute(**params)), or an entry point of the group "{ENTRY_POINT_GROUP}"')
    print("\nq presets (base[+modifier...]; a leading modifier starts from posterior; a preset a problem cannot "
          "serve is a skipped cell):")
    for name, text in PRESET_HELP.items():
        print(f"  {name:12s} {text}")
    print("\nestimators (estimators = [NAME or \"package.module:function\", ...]; target: what its truth is):")
    for name, e in registered().items():
        target = "by objective" if e.target == "objective" else e.target
        origin = e.origin if e.origin != "user" else "registered in this process"
        print(f"  {name:20s} target {target:12s} [{origin}]\n      {e.description}")
    print("  targets: " + "; ".join(f"{k}: {v}" for k, v in TARGETS.items()))
    print("\ngradient methods: " + ", ".join(METHODS))
    print("gradient objectives: " + ", ".join(OBJECTIVES))
    from .claims import CLAIM_IDS

    print("\nthe lecture's claims (`report DIR --claims [CLAIM ...]`): " + ", ".join(CLAIM_IDS))
    print("\nexecutors: local (sequential), local with --workers N (process pool), "
          "Dask with --scheduler tcp://HOST:PORT or local:N (the [distributed] extra; docs/scaling.md)")
    return 0


def _cmd_peers(args):
    from . import peers
    from .progress import Progress

    Ks = tuple(args.K) if args.K else peers.DEFAULT_KS
    for K in Ks:
        if K < 1:
            raise ValueError(f"K: every sample size must be >= 1, got {K}")
    if args.repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {args.repeats}")
    names = tuple(args.peers) if args.peers else peers.PEER_NAMES
    known = ("main",) + tuple(peers.SECTIONS)
    sections = tuple(args.sections) if args.sections else known
    for name in sections:
        if name not in known:
            raise ValueError(f"sections: unknown section {name!r}; known: {', '.join(known)}")
    df = None
    if "main" in sections:
        # the peak rates in rounds before and after the timings (the best of each is kept): one
        # measurement alone can fall in a slow spell of a shared machine and give a "ceiling" below
        # what the kernels then reach
        measured = []

        def measure_limits():
            if not args.no_limits:
                measured.extend(peers.machine_limits(settle=peers.SETTLE_SECONDS) for _ in range(2))

        measure_limits()
        with Progress(total=3 * len(Ks) * (1 + len(names)), label="peers") as bar:
            df, notes = peers.run_peers(Ks=Ks, peers=names, repeats=args.repeats,
                                        progress=lambda done, total: bar.update())
        measure_limits()
        limits = peers.best_limits(measured) if measured else None
        print(peers.format_table(df, notes, limits))
    for name in sections:
        if name == "main":
            continue
        module = importlib.import_module(peers.SECTIONS[name])
        bars = []

        def section_progress(done, total, bars=bars, name=name):
            if not bars:
                bars.append(Progress(total=total, label=f"peers: {name}"))
            bars[0].done = done - 1
            bars[0].update()

        try:
            _, text = module.run_section(repeats=args.repeats, progress=section_progress)
        finally:
            for bar in bars:
                bar.close()
        print(f"\n{module.TITLE}\n{text}")
    if "main" in sections and not args.no_scaling:
        from . import scaling

        rows, slopes, scaling_notes = scaling.throughput_vs_K()
        memory = [scaling.peak_memory("is_lg"), scaling.peak_memory("is_gm")]
        print(scaling.format_scaling(rows, slopes, scaling_notes, memory, scaling.thread_speedup()))
    if args.out and df is not None:
        print(f"table: {peers.write_results(df, limits, args.out)}")
    return 0


def main(argv=None):
    """Entry point; returns the exit status (2 for a ValueError: bad config or input)."""
    args = build_parser().parse_args(argv)
    handler = {"run": _cmd_run, "report": _cmd_report, "list": _cmd_list, "peers": _cmd_peers}[args.command]
    from .executors import was_interrupted

    try:
        return handler(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except SystemError as exc:  # Ctrl-C inside a numba call (see bench.executors.was_interrupted)
        if not was_interrupted(exc):
            raise
        print("\ninterrupted", file=sys.stderr)
        return 130
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `python -m bench list | head`
        sys.stderr.close()
        return 0
