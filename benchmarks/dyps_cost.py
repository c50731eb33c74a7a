"""Cost of DyPS against PS (issue 11, "Performance"; a benchmark, not a test). Target: DyPS <= 1.5x PS.

On the same world, batch, network and PPO settings: the wall time of one training iteration of DyPS and of
PS (``algo.train()``: sampling + learning, medians over alternating rounds, since a shared machine's load
drifts), the two parts timed on their own (one batch sampled by the env runner, then the learner's update on
it), and DyPS's own learner work (Alg. 1 lines 14-17: one selector step
per completed episode, the VLSTM and CVAE ELBO steps) on the same recorded episodes. DyPS's extra sampling
cost is the selection at each episode's creation (a VLSTM pass over each agent's last history) plus acting
through M modules instead of one; NoPS (one module per agent) is shown for scale.

    .venv/bin/python benchmarks/dyps_cost.py [--world lbf] [--batch 2000] [--rounds 3] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd

import envs
from rl_cs.config import to_dict
from rl_cs.experiment.gridworlds_config import load_experiment
from rl_cs.experiment.tune_runner import start_ray
from rl_cs.registry import get_method
from timing import learner_update


def build(method: str, config):
    return get_method(method).build_algorithm(config, {"world": to_dict(config.world)}, 0).build_algo()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="lbf", choices=["lbf", "rware"])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default="ps,dyps,nops")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = load_experiment(args.world, None, [f"training.train_batch_size={args.batch}", *args.set])
    start_ray()
    envs.register()
    methods = args.methods.split(",")
    algos = {m: build(m, config) for m in methods}
    for algo in algos.values():  # warm-up: first resets, module tracing, SePS/DyPS first episodes
        algo.train()
    rows = {m: [] for m in methods}
    for _ in range(args.rounds):  # whole iterations, alternating between the methods
        for method, algo in algos.items():
            start = time.perf_counter()
            algo.train()
            rows[method].append({"iteration_s": time.perf_counter() - start})
    for _ in range(args.rounds):  # then the two parts on their own (after the iterations: no interference)
        for method, algo in algos.items():
            start = time.perf_counter()
            episodes = algo.env_runner.sample(num_timesteps=args.batch)
            sampling = time.perf_counter() - start
            start = time.perf_counter()
            learner_update(algo, episodes)
            rows[method][_].update(sampling_s=sampling, learner_s=time.perf_counter() - start)
    dyps_part = None
    if "dyps" in algos:  # DyPS's own learner work (selector, VLSTM, CVAE) on the same recorded episodes
        algo = algos["dyps"]
        episodes = algo.env_runner.sample(num_timesteps=args.batch)
        learner = algo.learner_group._learner
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            learner.dyps_update(episodes)
            times.append(time.perf_counter() - start)
        dyps_part = statistics.median(times)
    table = pd.DataFrame([{"method": m, **{k: statistics.median(r[k] for r in rs) for k in rs[0]}}
                          for m, rs in rows.items()])
    base = table.set_index("method").loc["ps", "iteration_s"] if "ps" in rows else None
    if base:
        table["x_ps"] = table["iteration_s"] / base
    agents = config.world.num_agents
    print(f"{args.world} {config.world.size} ({agents} agents), {args.batch} env steps per iteration, "
          f"M = {config.dyps.num_groups}, medians of {args.rounds} alternating rounds")
    print(table.round(3).to_markdown(index=False))
    if dyps_part is not None:
        print(f"DyPS's selector + VLSTM + CVAE learner updates alone: {dyps_part:.3f} s per iteration")
    for algo in algos.values():
        algo.stop()


if __name__ == "__main__":
    main()
