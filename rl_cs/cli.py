"""The `rl-cs` command line: list, train, evaluate, check, report, bench, serve.

Worlds and methods come from the registries (rl_cs.worlds, rl_cs.methods); this file parses, checks the
names and flags against them, and dispatches to the world's command module. Every sub-command turns bad
input into one clear message and exit code 2 (see rl_cs.errors), before anything runs or is written.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from rl_cs import registry
from rl_cs.errors import InputError, require

LIST_HINT = "`rl-cs list` shows every world and method"


def _world_names() -> str:
    return ", ".join(registry.worlds())


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", default="csc", help=f"which world: {_world_names()} (default csc)")
    parser.add_argument("--data-dir", default=os.environ.get("RLCS_DATA_DIR"),
                        help="folder of real data (e.g. ../shared/data/chengdu); default: the world's seeded "
                             "synthetic data (env RLCS_DATA_DIR)")
    parser.add_argument("--config", help="experiment YAML (see tune_configs/); default: the world's quick config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field, e.g. --set world.num_workers=50 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    methods = registry.methods()
    parser = argparse.ArgumentParser(
        prog="rl-cs", description=__doc__.splitlines()[0],
        epilog=f"worlds: {_world_names()}. methods: {', '.join(methods)}. {LIST_HINT}, with one line each.")
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="the worlds and methods, which method runs on which world")
    listing.add_argument("--world", help="only this world's methods")

    train = sub.add_parser("train", help="run a Ray Tune experiment (one trial per seed, or a search)",
                           epilog=f"{LIST_HINT}.")
    train.add_argument("method", help=f"a method or baseline ({', '.join(methods)}), or 'all' for the YAML's "
                                      "experiment.methods")
    _add_common(train)
    train.add_argument("--seeds", type=int, help="number of seeds (one trial each); overrides the config")
    train.add_argument("--results-dir", default="results", help="where experiments are written (default ./results)")
    train.add_argument("--name", help="experiment name (default: <method>-<world>)")
    for flag, meaning in registry.TRAIN_FLAGS.items():
        worlds = [w.name for w in registry.worlds().values() if flag in w.train_flags]
        train.add_argument(f"--{flag.replace('_', '-')}", action="store_true",
                           help=f"{meaning.split(' ', 1)[1]} (worlds: {', '.join(worlds)})")

    evaluate = sub.add_parser("evaluate", help="run a heuristic or a trained checkpoint on a task stream",
                              epilog=f"{LIST_HINT}.")
    evaluate.add_argument("policy", help="a method name (greedy, pau, uns-ta, ...) or a checkpoint folder")
    _add_common(evaluate)
    evaluate.add_argument("--episodes", type=int, default=1, help="evaluation episodes (default 1)")
    evaluate.add_argument("--seed", type=int, default=12345, help="seed of the evaluation task stream")
    evaluate.add_argument("--log", help="write the per-task assignment log to this parquet file")

    check = sub.add_parser("check", help="a world's conformance suite (PettingZoo API test, RLlib env checker, "
                                         "determinism, masks, spaces); exit 0 only if it passes")
    check.add_argument("world_name", metavar="world", help=f"which world: {_world_names()}")
    check.add_argument("--data-dir", default=os.environ.get("RLCS_DATA_DIR"), help="as for train")
    check.add_argument("--config", help="experiment YAML whose world section is checked (default: quick config)")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as for train")
    check.add_argument("--seed", type=int, default=0, help="seed of the checked episodes (default 0)")
    check.add_argument("--max-steps", type=int, default=2000, help="env steps per checked episode (default 2000)")

    report = sub.add_parser("report", help="tables (Markdown, CSV) and plots from a results folder")
    report.add_argument("results", help="a results folder written by `rl-cs train`")
    report.add_argument("--out", help="where to write CSV/PNG (default: inside the results folder)")

    serve = sub.add_parser("serve", help="answer 'which task for each idle worker' for posted world snapshots "
                                         "(JSON over HTTP on 127.0.0.1, Ray Serve); Ctrl-C stops",
                           epilog="POST /assign takes a snapshot (schema: rl_cs.serve.snapshot, README 'Serving a "
                                  "policy'); GET /health says what is served.")
    serve.add_argument("policy", help="a heuristic (greedy, greedy-coord, pau, random) or a trained checkpoint folder")
    _add_common(serve)
    serve.add_argument("--port", type=int, default=8000, help="HTTP port on 127.0.0.1 (default 8000)")
    serve.add_argument("--max-workers", type=int, default=1000, help="most workers one request may hold (default 1000)")
    serve.add_argument("--max-tasks", type=int, default=5000, help="most tasks one request may hold (default 5000)")
    serve.add_argument("--max-body-kb", type=int, default=2048, help="largest request body, KiB (default 2048)")

    bench = sub.add_parser("bench", help="speed benchmarks (env and RLlib sampling throughput)")
    _add_common(bench)
    bench.add_argument("--workers", type=int, default=200)
    bench.add_argument("--tasks", type=int, default=200)
    bench.add_argument("--seconds", type=float, default=10.0, help="time budget per measurement")
    return parser


def _check_train_flags(args, world: registry.World) -> None:
    """A flag that does not apply to the world is refused, not ignored."""
    for flag in registry.TRAIN_FLAGS:
        if getattr(args, flag, False) and flag not in world.train_flags:
            applies = [w.name for w in registry.worlds().values() if flag in w.train_flags]
            raise InputError(f"--{flag.replace('_', '-')}", f"does not apply to world '{world.name}'",
                             f"it applies to: {', '.join(applies) or 'no world'}; leave it out")


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        from rl_cs.listing import print_listing
        return print_listing(args.world)
    if args.command == "report":
        from rl_cs.report.dispatch import report
        return report(Path(args.results), Path(args.out) if args.out else None)
    if args.command == "check":
        from rl_cs.check import check
        return check(args)
    if args.command in ("train", "serve", "bench"):  # before anything starts: RLCS_DASHBOARD must be a port
        from rl_cs.experiment.ray_session import dashboard_port
        dashboard_port()
    if args.command == "serve":
        from rl_cs.serve.service import serve
        return serve(args)
    world = registry.get_world(args.world)
    if args.command == "train":
        require(args.seeds is None or args.seeds >= 1, "--seeds", f"must be >= 1, got {args.seeds}")
        _check_train_flags(args, world)
        if args.method != "all":
            registry.get_method(args.method, world.name)
    if args.command == "evaluate":
        require(args.episodes >= 1, "--episodes", f"must be >= 1, got {args.episodes}")
        require(args.seed >= 0, "--seed", f"must be >= 0, got {args.seed}")
    if args.command == "bench":
        require(math.isfinite(args.seconds) and args.seconds > 0, "--seconds", f"must be a finite number > 0, got {args.seconds}")
    return getattr(world.command_module(), args.command)(args)


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
    except InputError as error:
        print(f"rl-cs: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("rl-cs: interrupted; finished results and checkpoints are kept (`rl-cs train` with the same "
              "arguments and --resume continues a training run)", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
