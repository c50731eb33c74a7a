"""Cost of CAFE against IPPO (issues 3 "Performance" and 9 "Speed"; a benchmark, not a test).

On the same world, batch and network, in one run:
- worker decisions per second through whole training iterations (sampling + learning; decisions = the agent
  steps the iteration sampled, from its result metrics) of IPPO and CAFE, with the iterations alternated so
  that a change of machine load hits both, against the raw world's decisions per second on the same world
  config (rl_cs.bench's plain loop, as `rl-cs bench` measures it; also with CAFE's credit-facts infos on);
- the learner update alone on the same recorded episodes (where CAFE's extra work lives: CMI, the VAE, the
  advantage basis, one Eq. 14 phi step per minibatch);
- the Eq. 14 phi step alone (implicit hypergradient with CG inverse-HVP over theta^l, plus the Adam step).
Target (issue 9): CAFE <= 1.5x IPPO per training iteration. What to expect on a 2-core machine (50 workers,
50 tasks, batch 1000): ~15-25 s per iteration, ~300-500 decisions/s through an iteration, the raw world
~2-4k decisions/s (so RLlib training runs at roughly a tenth of the raw world's rate or less).

    .venv/bin/python benchmarks/cafe_cost.py [--workers 50 --tasks 50 --batch 1000 --repeats 5 --seconds 10]
                                             [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses

import statistics
import time

import pandas as pd
import torch

import envs
from envs.csc import CSCEnv, env_config
from policies.attention import ACTOR_CONTEXT, ACTOR_OPTION_ROWS
from rl_cs.bench import raw_decisions_per_second
from rl_cs.experiment.config import load_experiment
from rl_cs.registry import get_method
from rl_cs.experiment.tune_runner import start_ray
from timing import learner_update, timed


def build(method: str, config):
    m = get_method(method)
    config = dataclasses.replace(config, world=dataclasses.replace(config.world, reward=m.reward))
    return m.build_algorithm(config, env_config(config.world, None), 0).build_algo()


def iteration(algo) -> tuple[float, int]:
    """(wall seconds, decisions) of one training iteration: decisions = agent steps sampled in it, summed over
    modules (our env runner logs them per module, not per agent)."""
    start = time.perf_counter()
    result = algo.train()
    seconds = time.perf_counter() - start
    steps = result["env_runners"]["num_module_steps_sampled"]
    return seconds, int(sum(steps.values()))


def alternated_iterations(algos: dict, repeats: int) -> dict[str, dict[str, float]]:
    """Per method: median iteration seconds, median decisions per iteration and median decisions/s over
    ``repeats`` iterations, the methods' iterations alternated (IPPO, CAFE, IPPO, ...)."""
    runs = {name: [] for name in algos}
    for _ in range(repeats):
        for name, algo in algos.items():
            runs[name].append(iteration(algo))
    return {name: {"iteration_s": statistics.median(s for s, _ in rows),
                   "decisions": statistics.median(d for _, d in rows),
                   "decisions_per_s": statistics.median(d / s for s, d in rows)} for name, rows in runs.items()}


def raw_rates(config, seconds: float) -> dict[str, float]:
    """The raw world's decisions/s (rl_cs.bench's loop) on the benchmark's world config, plain (IPPO's world)
    and with the credit-facts infos CAFE's world fills."""
    plain = env_config(config.world, None)
    return {"plain": raw_decisions_per_second(CSCEnv(plain), seconds),
            "credit_facts": raw_decisions_per_second(CSCEnv({**plain, "credit_facts": True}), seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--minibatch", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per raw-world measurement")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = load_experiment(None, [f"world.num_workers={args.workers}", f"world.num_tasks={args.tasks}",
                                    f"training.train_batch_size={args.batch}",
                                    f"training.minibatch_size={args.minibatch}", f"training.num_epochs={args.epochs}",
                                    "training.num_envs_per_env_runner=1", *args.set])
    raw = raw_rates(config, args.seconds)
    start_ray()
    envs.register()
    ippo, cafe = build("ippo", config), build("cafe", config)
    for algo in (ippo, cafe):
        algo.train()  # warm-up: first resets, module tracing
    rows = alternated_iterations({"ippo": ippo, "cafe": cafe}, args.repeats)
    # CAFE's runner records the episodes: its world fills the credit facts CAFE's connector needs (IPPO's
    # learner ignores the infos)
    episodes = cafe.env_runner.sample(num_timesteps=args.batch)
    for name, algo in (("ippo", ippo), ("cafe", cafe)):
        rows[name]["learner_update_s"] = timed(lambda: learner_update(algo, episodes), args.repeats)
    learner = cafe.learner_group._learner
    connector_out = learner._learner_connector(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes),
                                               shared_data={}, metrics=learner.metrics)["shared"]
    step = timed(lambda: learner.update_phi(connector_out), args.repeats * 4)
    # the same step reading the actor tower's outputs from PPO's training forward, as the learner does
    with torch.no_grad():
        out = learner.module["shared"].forward_train(connector_out)
    features = (out[ACTOR_CONTEXT], out[ACTOR_OPTION_ROWS])
    step_reused = timed(lambda: learner.update_phi(connector_out, features), args.repeats * 4)
    decisions = int(connector_out["facts_valid"].sum())
    print(f"CSC world N_w={args.workers}, N_tau={args.tasks}; train batch {args.batch} env steps "
          f"({decisions} decisions in the recorded batch), minibatch {args.minibatch}, {args.epochs} epoch(s); "
          f"median of {args.repeats}, IPPO and CAFE iterations alternated")
    print(report(rows, raw).to_markdown(index=False, floatfmt=".3f"))
    print(f"\nraw world (rl_cs.bench loop, {args.seconds:.0f} s each): {raw['plain']:.0f} decisions/s plain, "
          f"{raw['credit_facts']:.0f} with credit facts")
    cost = rows["ippo"]["decisions_per_s"] / rows["cafe"]["decisions_per_s"]
    print(f"CAFE's cost per decision through an iteration: {cost:.2f}x IPPO's (target <= 1.5x)")
    print(f"Eq. 14 phi step alone (hypergradient, CG over theta^l, Adam) on the full batch: {step * 1000:.1f} ms "
          f"running the actor tower again, {step_reused * 1000:.1f} ms on the tower outputs of PPO's forward "
          "(the learner's path)")
    phi = cafe.learner_group._learner.module["credit"].phi.tolist()
    print(f"phi after {args.repeats + 1} CAFE iterations (+ the timed phi steps): {phi}")
    ippo.stop()
    cafe.stop()


def report(rows: dict, raw: dict) -> pd.DataFrame:
    """The table: iteration time, decisions, decisions/s and its ratio to the raw world, learner update."""
    def row(measurement, key, scale=1.0):
        return {"measurement": measurement, "ippo": rows["ippo"][key] * scale, "cafe": rows["cafe"][key] * scale}

    frame = pd.DataFrame([
        row("training iteration (sample + learn), s", "iteration_s"),
        row("decisions sampled per iteration", "decisions"),
        row("decisions/s through an iteration", "decisions_per_s"),
        row("... ratio to the raw world's decisions/s", "decisions_per_s", 1.0 / raw["plain"]),
        row("learner update on the same episodes, s", "learner_update_s"),
    ])
    frame["cafe / ippo"] = frame["cafe"] / frame["ippo"]
    return frame


if __name__ == "__main__":
    main()
