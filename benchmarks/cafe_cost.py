"""Cost of CAFE against IPPO (issue 3, "Performance"; a benchmark, not a test).

On the same world, batch and network: the wall time of one training iteration (sampling + learning) of
CAFE and of IPPO, the learner update alone on the same recorded episodes (where CAFE's extra work lives:
CMI, the VAE, the advantage basis, one Eq. 14 phi step per minibatch), and the Eq. 14 phi step alone
(implicit hypergradient with CG inverse-HVP over theta^l, plus the Adam step). Target: CAFE <= 2x IPPO.

    .venv/bin/python benchmarks/cafe_cost.py [--workers 50 --tasks 50 --batch 1000 --repeats 5] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses

import pandas as pd

import envs
from envs.csc import env_config
from rl_cs.experiment.config import load_experiment
from rl_cs.registry import get_method
from rl_cs.experiment.tune_runner import start_ray
from timing import learner_update, timed


def build(method: str, config):
    m = get_method(method)
    config = dataclasses.replace(config, world=dataclasses.replace(config.world, reward=m.reward))
    return m.build_algorithm(config, env_config(config.world, None), 0).build_algo()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--minibatch", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    config = load_experiment(None, [f"world.num_workers={args.workers}", f"world.num_tasks={args.tasks}",
                                    f"training.train_batch_size={args.batch}",
                                    f"training.minibatch_size={args.minibatch}", f"training.num_epochs={args.epochs}",
                                    "training.num_envs_per_env_runner=1", *args.set])
    start_ray()
    envs.register()
    ippo, cafe = build("ippo", config), build("cafe", config)
    for algo in (ippo, cafe):
        algo.train()  # warm-up: first resets, module tracing
    episodes = ippo.env_runner.sample(num_timesteps=args.batch)
    rows = {}
    for name, algo in (("ippo", ippo), ("cafe", cafe)):
        rows[name] = {"iteration_s": timed(algo.train, args.repeats),
                      "learner_update_s": timed(lambda: learner_update(algo, episodes), args.repeats)}
    learner = cafe.learner_group._learner
    connector_out = learner._learner_connector(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes),
                                               shared_data={}, metrics=learner.metrics)["shared"]
    step = timed(lambda: learner.update_phi(connector_out), args.repeats * 4)
    decisions = int(connector_out["facts_valid"].sum())
    frame = pd.DataFrame([
        {"measurement": "training iteration (sample + learn), s", "ippo": rows["ippo"]["iteration_s"],
         "cafe": rows["cafe"]["iteration_s"]},
        {"measurement": "learner update on the same episodes, s", "ippo": rows["ippo"]["learner_update_s"],
         "cafe": rows["cafe"]["learner_update_s"]},
    ])
    frame["cafe / ippo"] = frame["cafe"] / frame["ippo"]
    print(f"CSC world N_w={args.workers}, N_tau={args.tasks}; train batch {args.batch} env steps "
          f"({decisions} decisions in the recorded batch), minibatch {args.minibatch}, {args.epochs} epoch(s); "
          f"median of {args.repeats}")
    print(frame.to_markdown(index=False, floatfmt=".3f"))
    print(f"\nEq. 14 phi step alone (hypergradient, CG over theta^l, Adam) on the full batch: {step * 1000:.1f} ms")
    phi = cafe.learner_group._learner.module["credit"].phi.tolist()
    print(f"phi after {args.repeats + 1} CAFE iterations (+ the timed phi steps): {phi}")
    ippo.stop()
    cafe.stop()


if __name__ == "__main__":
    main()
