"""The `rl-cs` command line: train, evaluate, report, bench.

Every sub-command turns bad input into one clear message and exit code 2 (see rl_cs.errors).
World-specific work lives in rl_cs.experiment.<world> modules; this file only parses and dispatches.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rl_cs.errors import InputError, closest

WORLDS = ("csc", "sensing")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", default="csc", help=f"which world: {', '.join(WORLDS)} (default csc)")
    parser.add_argument("--data-dir", default=os.environ.get("RLCS_DATA_DIR"),
                        help="folder of real data (e.g. ../shared/data/chengdu); default: the embedded synthetic city "
                             "(env RLCS_DATA_DIR)")
    parser.add_argument("--config", help="experiment YAML (see tune_configs/); default: the world's quick config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field, e.g. --set world.num_workers=50 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rl-cs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="run a Ray Tune experiment (one trial per seed, or a search)")
    train.add_argument("method", help="method or baseline name, e.g. ippo, greedy")
    _add_common(train)
    train.add_argument("--seeds", type=int, help="number of seeds (one trial each); overrides the config")
    train.add_argument("--results-dir", default="results", help="where experiments are written (default ./results)")
    train.add_argument("--name", help="experiment name (default: <method>-<world>)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted experiment of the same name")
    train.add_argument("--no-compare", action="store_true",
                       help="skip the closing evaluation of the trained policy next to Greedy")

    evaluate = sub.add_parser("evaluate", help="run a heuristic or a trained checkpoint on a task stream")
    evaluate.add_argument("policy", help="a method name (greedy, random, ...) or a checkpoint folder")
    _add_common(evaluate)
    evaluate.add_argument("--episodes", type=int, default=1, help="evaluation episodes (default 1)")
    evaluate.add_argument("--seed", type=int, default=12345, help="seed of the evaluation task stream")
    evaluate.add_argument("--log", help="write the per-task assignment log to this parquet file")

    report = sub.add_parser("report", help="tables (Markdown, CSV) and plots from a results folder")
    report.add_argument("results", help="a results folder written by `rl-cs train`")
    report.add_argument("--out", help="where to write CSV/PNG (default: inside the results folder)")

    bench = sub.add_parser("bench", help="speed benchmarks (env and RLlib sampling throughput)")
    _add_common(bench)
    bench.add_argument("--workers", type=int, default=200)
    bench.add_argument("--tasks", type=int, default=200)
    bench.add_argument("--seconds", type=float, default=10.0, help="time budget per measurement")
    return parser


def _check_world(world: str) -> None:
    if world not in WORLDS:
        raise InputError("--world", f"unknown world '{world}'", closest(world, WORLDS))


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "report":
        from rl_cs.report.dispatch import report
        return report(Path(args.results), Path(args.out) if args.out else None)
    _check_world(args.world)
    if args.world == "sensing":
        from rl_cs.experiment import sensing as world_commands
    else:
        from rl_cs.experiment import csc as world_commands
    return getattr(world_commands, args.command)(args)


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
    except InputError as error:
        print(f"rl-cs: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("rl-cs: interrupted; finished results and checkpoints are kept", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
