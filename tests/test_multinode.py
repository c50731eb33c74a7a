"""A two-node Ray cluster on this machine (issue 13): `rl-cs train` submitted to it as a Ray job, as a user would.

Two `ray start` nodes -- a head and a worker, 1 CPU each, with their own temp dirs and ports, every server bound
to 127.0.0.1 -- form the cluster; `ray job submit` sends it `rl-cs train ippo` with two seeds (one 1-CPU trial
per node). The test then kills the worker node (SIGKILL to everything it runs: `ray start`, raylet, agents and
the trial actor, as if the machine died) in the middle of an iteration, and checks that:

* the two trials ran on different nodes: Ray's state API (`ray list actors`) gives the node id of every trial
  actor, and each result row carries the pid of the actor that produced it;
* the lost trial was retried from its last checkpoint on the head (the one node left), so result.json holds
  every iteration exactly once, each produced by an actor on the node that ran it;
* the job succeeded and its results are complete: trials.csv, a heldout.json per trial, failures.jsonl.

The recovery time (kill -> the lost trial's next reported iteration) is printed (`-s`). With checkpoint_every=1
Tune saves each iteration before it starts the next, so a kill during iteration k+1 loses only that unfinished
iteration, which is trained again. Only if the kill lands between iteration k's result and its save (milliseconds;
the test aims the kill away from it) may iteration k appear twice; the test says so when it happens. Tune
restarts a retried trial's result.json from the results folder's copy, which lags the driver's by a few seconds;
this test lost an iteration that way until rl-cs copied the driver's logs there before a retry (last test).
Set RLCS_KEEP_TEST_CLUSTER=1 to keep the cluster's temp dir (logs, results) after the run.

Ray's multi-node mode never uses loopback: `ray start` replaces 127.0.0.1 by the machine's routable address
unless its local-only switch (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, see rl_cs/experiment/ray_session.py) is set,
and with that switch `ray start --address` refuses to add a worker node. NODE runs Ray's own `ray start` with the
switch set and only that refusal lifted, so both nodes, the job driver and every worker listen on 127.0.0.1.
Teardown never runs `ray stop` (it stops every Ray on the machine): it kills the processes the test started.
The same cluster first checks that a local run (no RAY_ADDRESS) starts its own Ray instead of joining it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from rl_cs.processes import command_line, descendants, free_ports

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "configs" / "csc_tiny.yaml")
ITERATIONS = 8
KILL_AFTER = 2  # the worker node dies during the lost trial's iteration KILL_AFTER + 1 (or a later one)
TIMEOUT_S = 300

NODE = textwrap.dedent("""
    import os, sys, types
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every address and server on loopback
    import ray._private.ray_constants as constants
    import ray.scripts.scripts as scripts
    guard = types.ModuleType(constants.__name__)
    guard.__dict__.update(vars(constants))
    guard.ENABLE_RAY_CLUSTER = True  # seen only by the CLI's refusal to start a worker node in that mode
    scripts.ray_constants = guard
    sys.argv = ["ray", "start", *sys.argv[1:]]
    scripts.main()
""")


def rows(trial: Path) -> list[dict]:
    log = trial / "result.json"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def is_loopback(ip: str) -> bool:
    import ipaddress

    address = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


class LocalCluster:
    """A head and a worker node started with `ray start --block`, each its own process group under ``root``."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="rlcs-mn-", dir="/tmp"))  # short: Ray's socket paths
        (self.root / "auth_token").write_text(secrets.token_hex(32))
        self.gcs, self.dashboard, client, metrics_a, metrics_d, *self.head_ports = free_ports(11)
        self.worker_ports = free_ports(6)
        bin_dir = str(Path(sys.executable).parent)
        self.env = {key: value for key, value in os.environ.items()
                    if key != "RAY_ADDRESS" and not key.startswith("RAY_AUTH")}
        self.env.update({
            "PATH": bin_dir + os.pathsep + self.env.get("PATH", ""),  # `rl-cs` and `ray` for the job, the CLI
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.root / "auth_token"),  # not ~/.ray
            "RAY_USAGE_STATS_ENABLED": "0",
            "AUTOSCALER_METRIC_PORT": str(metrics_a), "DASHBOARD_METRIC_PORT": str(metrics_d),
        })
        self.ray = shutil.which("ray", path=bin_dir) or shutil.which("ray")
        self.started: list[subprocess.Popen] = []
        self.head = self._start("ray", "--head", f"--port={self.gcs}", "--dashboard-host=127.0.0.1",
                                f"--dashboard-port={self.dashboard}", f"--ray-client-server-port={client}",
                                *self._ports(self.head_ports))
        self._wait_started("ray")  # the head's temp dir is <root>/ray: Ray's default one for RAY_TMPDIR=<root>
        self.worker = self._start("worker", f"--address=127.0.0.1:{self.gcs}", *self._ports(self.worker_ports))
        self._wait_started("worker")
        self.nodes = self._wait_for_nodes(2)

    @staticmethod
    def _ports(ports: list[int]) -> list[str]:
        names = ("node-manager", "object-manager", "runtime-env-agent", "dashboard-agent-grpc",
                 "dashboard-agent-listen", "metrics-export")
        return [f"--{name}-port={port}" for name, port in zip(names, ports, strict=True)]

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.root / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", NODE, *args, "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
                 f"--object-store-memory={200 * 1024 ** 2}", f"--temp-dir={self.root / name}",
                 "--disable-usage-stats", "--block"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self.env, cwd=self.root)
        self.started.append(process)
        return process

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait_started(self, name: str, timeout: float = 120) -> None:
        start, process = time.monotonic(), self.started[-1]
        while "Ray runtime started" not in self.log(name):
            said = self.log(name)[-3000:]
            assert process.poll() is None, f"`ray start` ({name}) exited {process.returncode}:\n{said}"
            assert time.monotonic() - start < timeout, f"{name} node not up after {timeout} s:\n{said}"
            time.sleep(0.5)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([self.ray, *args], env=self.env, cwd=self.root, capture_output=True, text=True,
                              timeout=timeout)

    def state(self, kind: str, *filters: str) -> list[dict]:
        """`ray list <kind> --detail` (Ray's state API), as JSON."""
        done = self.cli("list", kind, f"--address=127.0.0.1:{self.gcs}", "--detail", "--format=json",
                        "--limit=1000", *[f"--filter={item}" for item in filters])
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    def _wait_for_nodes(self, count: int, timeout: float = 60) -> dict[str, str]:
        """{'head': node id, 'worker': node id} once ``count`` nodes are alive."""
        start = time.monotonic()
        while True:
            alive = [node for node in self.state("nodes") if node["state"] == "ALIVE"]
            if len(alive) == count:
                return {("head" if node["is_head_node"] else "worker"): node["node_id"] for node in alive}
            assert time.monotonic() - start < timeout, f"{len(alive)} of {count} nodes alive: {alive}"
            time.sleep(1)

    def kill_worker_node(self) -> None:
        """SIGKILL everything the worker node runs, at once: a machine that died."""
        doomed = [self.worker.pid, *descendants(self.worker.pid)]
        os.killpg(self.worker.pid, signal.SIGKILL)
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.worker.wait()

    def listeners(self) -> list[dict]:
        """Listening TCP sockets of every process the cluster runs (nodes, workers, the job driver)."""
        import psutil

        tree = {pid for process in self.started for pid in (process.pid, *descendants(process.pid))}
        return [{"process": command_line(conn.pid)[:80], "ip": conn.laddr.ip, "port": conn.laddr.port}
                for conn in psutil.net_connections("tcp")
                if conn.status == psutil.CONN_LISTEN and conn.pid in tree]

    def close(self) -> None:
        """Kill every process the test started (the nodes' groups, their descendants, the job driver, whose
        `ray job` supervisor starts it in a session of its own) and remove the temp dir."""
        marker = str(self.root)
        for _ in range(3):
            doomed = {pid for process in self.started for pid in (process.pid, *descendants(process.pid))}
            doomed |= {int(p.name) for p in Path("/proc").glob("[0-9]*") if marker in command_line(int(p.name))}
            doomed.discard(os.getpid())
            for process in self.started:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            for pid in doomed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for process in self.started:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    pass
            time.sleep(0.5)
        if not os.environ.get("RLCS_KEEP_TEST_CLUSTER"):  # set it to read the logs of a failed run
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    started = None
    try:
        started = LocalCluster()
        yield started
    finally:
        if started is not None:
            started.close()


class Job:
    """`ray job submit` (blocking: it follows the job's output until the job ends) in the background."""

    def __init__(self, cluster: LocalCluster, *entrypoint: str):
        self.cluster, self.log = cluster, cluster.root / "job.log"
        for attempt in range(3):  # the dashboard's job service may still be starting
            with open(self.log, "wb") as log:
                self.process = subprocess.Popen(
                    [cluster.ray, "job", "submit", f"--address=http://127.0.0.1:{cluster.dashboard}",
                     f"--submission-id=rlcs-multinode-{attempt}", "--", *entrypoint],
                    stdout=log, stderr=subprocess.STDOUT, env=cluster.env, cwd=cluster.root, start_new_session=True)
            cluster.started.append(self.process)
            while self.process.poll() is None and "submitted successfully" not in self.output:
                time.sleep(0.5)
            if "submitted successfully" in self.output:
                return
            time.sleep(3)
        pytest.fail(f"`ray job submit` failed:\n{self.output[-3000:]}")

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, condition, what: str, timeout: float = TIMEOUT_S) -> float:
        start = time.monotonic()
        while not condition():
            assert self.process.poll() is None, f"job ended (exit {self.process.returncode}) before {what}:\n" \
                                                f"{self.output[-4000:]}"
            assert time.monotonic() - start < timeout, f"no {what} after {timeout} s:\n{self.output[-4000:]}"
            time.sleep(0.2)
        return time.monotonic() - start

    def wait(self, timeout: float = TIMEOUT_S) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"job did not end within {timeout} s:\n{self.output[-4000:]}")


def saved(trial: Path) -> int:
    """The last iteration whose checkpoint the trial's actor has written (checkpoint_000000: iteration 1).
    Checkpoints go to the results folder straight from the actor; result.json and failures.jsonl are written by
    the driver in its own folder and copied there every few seconds, so they lag."""
    found = [int(path.name.split("_")[1]) + 1 for path in trial.glob("checkpoint_*")
             if (path / "learner_group").is_dir()]
    return max(found, default=0)


@pytest.mark.slow
def test_a_local_run_never_joins_a_cluster_started_on_the_machine(cluster):
    """Without RAY_ADDRESS, rl-cs starts its own loopback-only Ray. Plain ray.init() would join the cluster that
    `ray start` last started on this machine (its address file in Ray's temp dir), here the test's cluster."""
    env = {**cluster.env, "RAY_TMPDIR": str(cluster.root)}  # where ray.init looks for `ray start`'s address file
    del env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]
    address = cluster.root / "ray" / "ray_current_cluster"  # `ray start` writes it once the head is up
    for _ in range(60):
        if address.exists():
            break
        time.sleep(0.5)
    assert address.read_text().strip() == f"127.0.0.1:{cluster.gcs}"
    script = ("import ray\nfrom rl_cs.experiment.ray_session import start_ray\nstart_ray()\n"
              "print('GCS', ray.get_runtime_context().gcs_address)\nray.shutdown()")
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("GCS ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    assert lines[-1] != f"GCS 127.0.0.1:{cluster.gcs}", "start_ray joined the cluster instead of starting its own"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_train_job_spreads_over_two_nodes_and_survives_losing_one(cluster):
    started = time.monotonic()
    results = cluster.root / "results"
    folder = results / "ippo-csc"
    job = Job(cluster, "rl-cs", "train", "ippo", "--world", "csc", "--config", TINY, "--seeds", "2",
              "--set", f"experiment.iterations={ITERATIONS}", "--set", "experiment.checkpoint_every=1",
              "--set", "world.num_workers=10", "--set", "world.num_tasks=10",
              "--results-dir", str(results), "--no-compare")

    # Both trials running: which one is on the worker node (its actor is a process of that node)?
    trials: dict[str, Path] = {}

    def both_running() -> bool:
        on_worker = set(descendants(cluster.worker.pid))
        for trial in folder.glob("PPO_*"):
            found = rows(trial)
            if found:
                trials["worker" if found[-1]["pid"] in on_worker else "head"] = trial
        return len(trials) == 2

    job.wait_for(both_running, "a reported iteration of each trial, one on each node")
    exposed = [entry for entry in cluster.listeners() if not is_loopback(entry["ip"])]
    assert not exposed, f"listening beyond loopback: {exposed}"
    lost, kept = trials["worker"], trials["head"]

    # Kill the worker node mid-iteration: iteration k saved (its checkpoint written), iteration k + 1 under way.
    while True:
        job.wait_for(lambda: saved(lost) >= KILL_AFTER, f"iteration {KILL_AFTER} of {lost.name} saved")
        k = saved(lost)
        time.sleep(0.5)  # the save has returned and Tune has started iteration k + 1
        if saved(lost) == k:
            break
    assert k < ITERATIONS, f"the trial on the worker node finished before it could be killed ({k} iterations)"
    old_pid = rows(lost)[0]["pid"]
    lagging = len(rows(lost)) < k  # the results folder's result.json behind the driver's (Tune copies it later)
    cluster.kill_worker_node()
    killed, killed_at = time.monotonic(), time.time()
    last = saved(lost)  # k, unless iteration k + 1's checkpoint was written in the kill's last milliseconds
    noticed_s = job.wait_for(lambda: "failed after iteration" in job.output, "Tune noticing the lost trial")
    code = job.wait()
    assert code == 0 and "succeeded" in job.output, job.output[-4000:]

    # The lost trial was retried on the head from its last checkpoint c (k): every iteration once. The driver
    # had seen ``a`` iterations when it noticed: c, or c + 1 if the kill fell between iteration c + 1's result
    # and its save (milliseconds), in which case iteration c + 1 is trained again and appears twice.
    record = json.loads((folder / "failures.jsonl").read_text().splitlines()[0])
    a = record["after_iteration"]
    lost_rows, kept_rows = rows(lost), rows(kept)
    retried = [row for row in lost_rows if row["pid"] != old_pid]
    iterations = [row["training_iteration"] for row in lost_rows]
    c = retried[0]["training_iteration"] - 1 if retried else None
    assert c in (k, last), (k, last, iterations)  # resumed from the last checkpoint written before the kill
    assert a in (c, c + 1) and iterations == [*range(1, a + 1), *range(c + 1, ITERATIONS + 1)], (c, a, iterations)
    assert [row["training_iteration"] for row in kept_rows] == list(range(1, ITERATIONS + 1))
    assert all(row["env_runners"]["num_env_steps_sampled"] > 0 for row in lost_rows + kept_rows)
    # Tune's result timestamps (whole seconds) are taken on the actor when an iteration ends
    resumed_s = retried[0]["timestamp"] - killed_at
    waited = kept_rows[-1]["timestamp"] > killed_at
    print(f"\n[recovery] worker node SIGKILL {time.monotonic() - killed:.0f} s before the job ended, during "
          f"iteration {c + 1} of {lost.name}: Tune noticed after {noticed_s:.1f} s; iteration {c + 1} ended on "
          f"the head {resumed_s:.0f} s (+-1 s) after the kill"
          + (" (the head's one CPU was busy until the other trial finished)" if waited else
             " (the other trial had finished: the head's CPU was free)")
          + (f"; the kill fell in iteration {a}'s save: it ran twice" if a > c else "")
          + ("; result.json in the results folder lagged at the kill" if lagging else "")
          + f"; whole test {time.monotonic() - started:.0f} s")

    # Which node produced each iteration: the pid in each result row -> the node id of that trial actor.
    node_of = {actor["pid"]: actor["node_id"] for actor in cluster.state("actors", "class_name=PPO")}
    nodes = cluster.nodes
    assert {node_of[row["pid"]] for row in kept_rows} == {nodes["head"]}
    ran_on = [node_of[row["pid"]] for row in lost_rows]
    assert ran_on == [nodes["worker"]] * a + [nodes["head"]] * len(retried), ran_on
    states = {node["node_id"]: node["state"] for node in cluster.state("nodes")}
    assert states == {nodes["head"]: "ALIVE", nodes["worker"]: "DEAD"}, states

    # The failure was recorded and retried once; the final outputs are all there.
    records = [json.loads(line) for line in (folder / "failures.jsonl").read_text().splitlines() if line.strip()]
    assert [record["retried"] for record in records] == [True], records
    summary = pd.read_csv(folder / "trials.csv")
    assert sorted(summary["seed"]) == [0, 1] and (summary["iterations"] == ITERATIONS).all(), summary
    for trial in (lost, kept):
        assert (trial / "heldout.json").exists(), sorted(p.name for p in trial.iterdir())
        assert len(pd.read_csv(trial / "progress.csv")) == len(rows(trial))
    assert "fault tolerance:" in job.output and "retrying from its last checkpoint" in job.output


def test_a_retried_trial_keeps_the_iterations_the_results_folder_had_not_caught_up_with(tmp_path):
    """Tune restarts a retried trial's result.json from the results folder's copy, which the driver refreshes
    only every few seconds; before a retry rl-cs copies the driver's own (complete) file there first. Without
    it the test above lost a reported iteration (result.json 1, 3, 4, ...) in about half of its runs."""
    from types import SimpleNamespace

    from rl_cs.experiment.tune_runner import _keep_logs

    staging, stored = tmp_path / "staging" / "PPO_0", tmp_path / "results" / "PPO_0"
    staging.mkdir(parents=True)
    stored.mkdir(parents=True)
    (staging / "result.json").write_text('{"training_iteration": 1}\n{"training_iteration": 2}\n')
    (stored / "result.json").write_text('{"training_iteration": 1}\n')
    _keep_logs(SimpleNamespace(local_path=str(staging), path=str(stored)))
    assert (stored / "result.json").read_text() == (staging / "result.json").read_text()
    assert sorted(path.name for path in stored.iterdir()) == ["result.json"]
