"""Load benchmark of `rl-cs serve`: requests per second and latency for 1, 10 and 100 idle workers per request.

Run (from the repository root, in the project's environment; loopback only, bounded in count and time)::

    python benchmarks/serve_load.py                          # trains a small IPPO checkpoint first (~1 min)
    python benchmarks/serve_load.py --checkpoint results/ippo-csc/PPO_csc_.../checkpoint_000009
    python benchmarks/serve_load.py --checkpoint ... --clients 4 --requests 500 --profile

For each policy -- the paper's Greedy and the trained checkpoint, both on the checkpoint's own world -- it
starts `rl-cs serve` in a subprocess on a free port of 127.0.0.1 (exactly as a user would), waits for its ready
line, and for 1, 10 and 100 idle workers per request posts snapshots (that many idle workers at request
locations with sampled skills, ``--tasks`` open tasks from the world's task stream; a few distinct snapshots
in turn) from ``--clients`` keep-alive connections: ``--warmup`` requests first, then up to ``--requests``
requests or ``--seconds`` seconds per case, whichever ends first. It prints requests/s and the p50 / p90 /
p99 of the full HTTP round trip seen by the client, and the p50 / p99 of the decision inside the service
(its ``Server-Timing`` header: parsing, the world's feasibility, masks and observations, the policy). The
difference is Ray Serve's HTTP proxy and its hop to the replica. ``--profile`` adds where one request's
decision time goes, measured in this process (parse, world, policy) and the top of a cProfile.

Without ``--checkpoint`` it trains IPPO for one iteration of the quick config (tune_configs/csc_quick.yaml:
its default attention network, 64-wide, 4 heads) into a temporary folder; an undertrained policy costs
exactly as much per request as a trained one.

What to expect (measured on the 2-core development VM while other sessions trained on it, load average
6-11; README "Serving a policy" has the whole table): with 100 idle workers and 100 open tasks per request
and one client, Greedy 62 requests/s, p50 13.8 ms, p99 47 ms; the trained IPPO policy 42 requests/s, p50 21 ms,
p99 53-60 ms over three runs -- the issue's goal of a p99 under 50 ms was missed under that load; on the
quiet VM (nothing else running) 58 requests/s, p50 16.6 ms, p99 24.7 ms: the goal met. About 9 ms
of it is the decision inside the service (parse 1.3 ms, world 2-4 ms, the network's forward pass 4.7 ms),
about 5 ms Ray Serve's proxy and its hop to the replica (the GET /health line), the rest the body's way
through the proxy and waiting for a core. A run takes about 2.5 minutes (both services start Ray Serve).
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "tune_configs" / "csc_quick.yaml"
WORKERS = (1, 10, 100)
DISTINCT = 8
"""Distinct snapshots per case, posted in turn."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a trained csc checkpoint folder (default: train a small one)")
    parser.add_argument("--data-dir", help="the real data folder the checkpoint was trained on (default: synthetic)")
    parser.add_argument("--tasks", type=int, default=100, help="open tasks per request (default 100)")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per case, at most (default 300)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per case, at most (default 30)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests before each case (default 20)")
    parser.add_argument("--clients", type=int, default=1, help="concurrent keep-alive connections (default 1)")
    parser.add_argument("--policies", default="greedy,trained", help="which of greedy,trained (default both)")
    parser.add_argument("--profile", action="store_true", help="also profile one 100-worker decision in-process")
    args = parser.parse_args(argv)
    for name in ("tasks", "requests", "warmup", "clients"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name} must be >= 1")
    if not 0 < args.seconds <= 600 or args.requests > 100_000 or args.clients > 64:
        parser.error("--seconds must be in (0, 600], --requests <= 100000, --clients <= 64")
    return args


# ----------------------------------------------------------------------------------------------- snapshots
def snapshots(world_config, data_dir, workers: int, tasks: int, seed: int) -> list[bytes]:
    """DISTINCT request bodies: ``workers`` idle workers (at request locations, skills as the world samples
    them) and ``tasks`` consecutive requests of the world's stream, all open at the time of the last one."""
    from envs.csc import scenario_for
    from rl_cs.data.tasks import sample_worker_skills

    scenario = scenario_for(world_config, data_dir, os.environ.get("RLCS_CACHE_DIR"))
    pool, rng = scenario.tasks, np.random.default_rng(seed)
    bodies = []
    for _ in range(DISTINCT):
        window = pool.window(int(rng.integers(0, len(pool) - tasks + 1)), tasks)
        now = float(window.created[-1])
        nodes, skills = rng.choice(pool.node, workers), sample_worker_skills(workers, rng)
        body = {"time": now,
                "workers": [{"id": f"w{i}", "location": {"node": int(nodes[i])},
                             "skills": np.flatnonzero(skills[i]).tolist()} for i in range(workers)],
                "tasks": [{"id": f"t{j}", "location": {"node": int(window.node[j])}, "skill": int(window.skill[j]),
                           "expected": float(window.expected[j]), "deadline": float(window.deadline[j]),
                           "remaining": float(window.quantity[j]), "rho_max": float(window.rho_max[j])}
                          for j in range(tasks) if window.deadline[j] > now]}
        bodies.append(json.dumps(body).encode())
    return bodies


# ----------------------------------------------------------------------------------------------- the service
class Service:
    def __init__(self, policy: str, config: Path, data_dir: str | None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.log = tempfile.NamedTemporaryFile("w+", prefix="serve-load-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rl_cs.cli", "serve", policy, "--config", str(config), "--port", str(self.port),
             *(["--data-dir", data_dir] if data_dir else [])],
            stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True, cwd=REPO)

    def wait_ready(self, timeout_s: float = 240.0) -> None:
        lines = []

        def read():
            for line in self.process.stdout:
                lines.append(line)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not any(line.startswith("serving ") for line in lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = Path(self.log.name).read_text()[-2000:]
                raise SystemExit(f"rl-cs serve did not start: {''.join(lines)}\n{log}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        Path(self.log.name).unlink(missing_ok=True)


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[float, float]:
    """One request: (client round trip, the service's own decision time), ms."""
    start = time.perf_counter()
    connection.request("POST", "/assign", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    elapsed = (time.perf_counter() - start) * 1000.0
    if response.status != 200:
        raise RuntimeError(f"a request failed: {response.status} {payload[:300]!r}")
    return elapsed, float(response.getheader("Server-Timing", "assign;dur=nan").split("dur=")[1])


def measure(port: int, bodies: list[bytes], args) -> dict:
    """``args.warmup`` requests, then ``args.requests`` (at most, in ``args.seconds`` at most) from
    ``args.clients`` keep-alive connections: requests/s and percentiles, ms."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(args.warmup):
        post(connection, bodies[i % len(bodies)])
    connection.close()
    results, failures, lock, left = [], [], threading.Lock(), [args.requests]
    deadline = time.perf_counter() + args.seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            sent = 0
            while time.perf_counter() < deadline:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                try:
                    result = post(connection, bodies[(index + sent) % len(bodies)])
                except (RuntimeError, OSError, http.client.HTTPException) as error:
                    failures.append(error)
                    return
                sent += 1
                with lock:
                    results.append(result)
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} client(s) failed, e.g. {failures[0]}")
    lat, srv = np.array([r[0] for r in results]), np.array([r[1] for r in results])
    return {"requests": len(lat), "rps": len(lat) / wall, "p50": np.percentile(lat, 50), "p90": np.percentile(lat, 90),
            "p99": np.percentile(lat, 99), "max": lat.max(), "server_p50": np.percentile(srv, 50),
            "server_p99": np.percentile(srv, 99)}


def floor(port: int, count: int = 100) -> tuple[float, float]:
    """p50 and p99 of GET /health (no decision): what Ray Serve's proxy and its hop to the replica cost, ms."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            connection.request("GET", "/health")
            connection.getresponse().read()
            times.append((time.perf_counter() - start) * 1000.0)
    finally:
        connection.close()
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


# ----------------------------------------------------------------------------------------------- profile
def profile(policy: str, world_config, data_dir, body: bytes) -> str:
    """Where one request's decision time goes, in this process: parse, world (feasibility, masks,
    observations), policy; and the top of a cProfile of the whole decision."""
    import torch

    from rl_cs.serve.assigner import Assigner
    from rl_cs.serve.snapshot import parse_body

    torch.set_num_threads(1)  # as in the service's replica
    assigner = Assigner(policy, world_config, data_dir, cache_dir=os.environ.get("RLCS_CACHE_DIR"))
    assigner.warm_up()
    parts = {"parse (JSON + validation)": [], "world (feasibility, masks, observations)": [], "policy (act)": [],
             "whole decision": []}
    for _ in range(50):
        t0 = time.perf_counter()
        snapshot = parse_body(body, assigner.road, assigner.limits)
        t1 = time.perf_counter()
        view, obs = assigner.world.decide(snapshot)
        t2 = time.perf_counter()
        assigner.actor.act(view, obs)
        t3 = time.perf_counter()
        assigner.respond(body)
        t4 = time.perf_counter()
        for name, span in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[name].append(span * 1000.0)
    lines = [f"  {name:45s} p50 {np.percentile(v, 50):6.2f} ms   p99 {np.percentile(v, 99):6.2f} ms"
             for name, v in parts.items()]
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(20):
        assigner.respond(body)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(18)
    return "\n".join(lines) + "\n" + "\n".join(text.getvalue().splitlines()[6:])


# ----------------------------------------------------------------------------------------------- main
def train_checkpoint(folder: Path) -> Path:
    print("training IPPO for one iteration of the quick config ...", flush=True)
    subprocess.run([sys.executable, "-m", "rl_cs.cli", "train", "ippo", "--world", "csc", "--config", str(QUICK),
                    "--results-dir", str(folder), "--set", "experiment.iterations=1", "--no-compare"],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return sorted(next((folder / "ippo-csc").glob("PPO_csc_*")).glob("checkpoint_*"))[-1]


def main(argv=None) -> int:
    args = parse_args(argv)
    from rl_cs.config import to_dict
    from rl_cs.evaluation import experiment_config

    with tempfile.TemporaryDirectory(prefix="serve-load-") as scratch:
        checkpoint = Path(args.checkpoint).resolve() if args.checkpoint else train_checkpoint(Path(scratch))
        world = experiment_config(checkpoint, "csc").world
        config = Path(scratch) / "world.yaml"  # Greedy is served on the checkpoint's own world
        config.write_text(yaml.safe_dump({"world": to_dict(world)}))
        data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
        cases = {n: snapshots(world, data_dir, n, args.tasks, seed=n) for n in WORKERS}
        policies = {"greedy": "greedy", "trained": str(checkpoint)}
        print(f"world: {world.num_optional_tasks} options per worker, {args.tasks} open tasks per request; "
              f"{args.clients} client(s), up to {args.requests} requests or {args.seconds:g} s per case; "
              f"checkpoint {checkpoint}\n")
        print("| policy | workers/request | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | in-service p50 ms "
              "| in-service p99 ms |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        floors = []
        for label in args.policies.split(","):
            service = Service(policies[label], config, data_dir)
            try:
                service.wait_ready()
                floors.append((label, *floor(service.port)))
                for workers, bodies in cases.items():
                    r = measure(service.port, bodies, args)
                    print(f"| {label} | {workers} | {r['requests']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p90']:.1f} "
                          f"| {r['p99']:.1f} | {r['max']:.1f} | {r['server_p50']:.1f} | {r['server_p99']:.1f} |",
                          flush=True)
            finally:
                service.stop()
        for label, p50, p99 in floors:
            print(f"\nGET /health (no decision: Serve's proxy and its hop to the replica), {label} service: "
                  f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", end="")
        print()
        if args.profile:
            for label in args.policies.split(","):
                print(f"\nwhere one 100-worker decision's time goes ({label}, in-process):")
                print(profile(policies[label], world, data_dir, cases[100][0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
