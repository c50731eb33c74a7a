"""`rl-cs serve`: a CSC policy answering world snapshots over HTTP, as a Ray Serve deployment on 127.0.0.1.

    rl-cs serve greedy --world csc --port 8000
    rl-cs serve results/ippo-csc/PPO_csc_.../checkpoint_000009 --port 8000

Endpoints (the request and answer schema: rl_cs.serve.snapshot):

- ``POST /assign``: a world snapshot -> ``{"assignments": {worker id: task id or null}, "policy": name}``;
  a bad request gets a 400 or 413 with ``{"error", "field", "problem", "fix"}``; the header
  ``Server-Timing: assign;dur=<ms>`` says how long the decision itself took inside the service.
- ``GET /health`` (and ``GET /``): what is served: policy, world, map extent, limits.

Everything is checked before Ray starts (policy, world, config, data folder, port): a bad flag is one message
and exit code 2, and nothing starts. The service then prints ``serving <policy> on
http://127.0.0.1:<port>/assign`` once it answers, and stops cleanly on Ctrl-C (or SIGTERM).

One replica answers one request at a time (its handler never yields while it decides), so the world it
holds is never shared between two requests; each request is answered on its own, with nothing carried over
from earlier ones.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from envs.csc_config import CSCConfig
from rl_cs import registry
from rl_cs.config import parse_value, with_override
from rl_cs.errors import InputError, require
from rl_cs.serve.snapshot import Limits, RequestError, too_large

HOST = "127.0.0.1"
"""The service listens on loopback only."""
SERVED_WORLDS = ("csc",)
APP_NAME = "rl-cs"
READY_TIMEOUT_S = 120.0
MAX_BODY_KB = 1024 * 1024
"""Largest --max-body-kb (1 GiB): the body is held in memory while it is read."""

logger = logging.getLogger("rl_cs.serve")


@dataclass(frozen=True)
class ServiceSpec:
    """What the deployment's replica builds its Assigner from (plain, picklable values)."""

    policy: str
    world: CSCConfig
    data_dir: str | None = None
    cache_dir: str | None = None
    limits: Limits = Limits()
    torch_threads: int = 1


# --------------------------------------------------------------------------------------------- deployment
class AssignmentService:
    """The Ray Serve deployment: one Assigner behind a tiny router (POST /assign, GET /health)."""

    def __init__(self, spec: ServiceSpec):
        import torch

        from rl_cs.serve.assigner import Assigner

        torch.set_num_threads(spec.torch_threads)  # one small forward pass per request: threads only contend
        self.assigner = Assigner(spec.policy, spec.world, spec.data_dir, spec.limits, spec.cache_dir)
        self.assigner.warm_up()
        self.info = self.assigner.info()

    async def __call__(self, request):
        from starlette.responses import JSONResponse

        path = request.url.path.rstrip("/") or "/"
        if path in ("/", "/health"):
            if request.method not in ("GET", "HEAD"):
                return _error(405, path, f"{request.method} is not allowed here", "use GET", allow="GET, HEAD")
            return JSONResponse(self.info)
        if path != "/assign":
            return _error(404, path, "no such endpoint", "POST /assign, GET /health")
        if request.method != "POST":
            return _error(405, path, f"{request.method} is not allowed here", "POST a world snapshot (JSON)",
                          allow="POST")
        try:
            body = await _read_body(request, self.assigner.limits)
        except RequestError as error:
            return JSONResponse(error.to_json(), status_code=error.status)
        start = time.perf_counter()  # from here on nothing awaits: requests never interleave in the world
        try:
            status, payload = self.assigner.respond(body)
        except Exception as error:  # noqa: BLE001 -- a bug must not take the service down; say so and log it
            logger.exception("POST /assign failed")
            return _error(500, "service", f"internal error ({type(error).__name__}: {error})",
                          "this is a bug in rl-cs serve; the service keeps running")
        elapsed = (time.perf_counter() - start) * 1000.0
        return JSONResponse(payload, status_code=status, headers={"Server-Timing": f"assign;dur={elapsed:.3f}"})


async def _read_body(request, limits: Limits) -> bytes:
    """The request body, read no further than the size limit (a RequestError 413 beyond it)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError("Content-Length", f"not a number: {declared!r}") from None
        if size > limits.max_body_bytes:
            raise too_large(size, limits)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise too_large(size, limits)
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, where: str, problem: str, fix: str, allow: str | None = None):
    from starlette.responses import JSONResponse

    payload = RequestError(where, problem, fix, status).to_json()
    return JSONResponse(payload, status_code=status, headers={"Allow": allow} if allow else None)


# --------------------------------------------------------------------------------------------- the command
def serve(args) -> int:
    """`rl-cs serve`: check everything, start Ray Serve on 127.0.0.1, print the ready line, serve until Ctrl-C
    or SIGTERM; then shut Serve and Ray down. Exit code 0 after a clean stop, 1 if the service did not
    start, 130 if interrupted while starting."""
    spec = prepare(args)
    print(f"starting Ray Serve on http://{HOST}:{args.port} ...", flush=True)
    code, serving = 0, False
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        start(spec, args.port)
        print(f"serving {args.policy} on http://{HOST}:{args.port}/assign (GET /health for info; Ctrl-C stops)",
              flush=True)
        serving = True
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        code = 0 if serving else 130
    except Exception as error:  # noqa: BLE001 -- Ray's start-up errors: one line, not a traceback
        print(f"rl-cs: error: the service did not start ({type(error).__name__}: {error})", file=sys.stderr)
        code = 1
    finally:
        with _interrupts_ignored():
            print("stopping ...", file=sys.stderr, flush=True)
            stop()
            signal.signal(signal.SIGTERM, previous)
            print("stopped", file=sys.stderr, flush=True)
    return code


def prepare(args) -> ServiceSpec:
    """The service's spec from the command line, every input checked (InputError, exit 2) before anything
    starts: the world, the limits, the policy and its config (the policy is loaded and set up on the served
    world here, as the replica will), and the port (free on 127.0.0.1)."""
    world = registry.get_world(args.world)
    require(world.name in SERVED_WORLDS, "--world", f"`rl-cs serve` serves the {', '.join(SERVED_WORLDS)} world, "
            f"not '{world.name}'", f"pass --world {SERVED_WORLDS[0]} with a policy of that world")
    require(1 <= args.port <= 65535, "--port", f"must be a TCP port 1..65535, got {args.port}", "e.g. --port 8000")
    for flag, value in (("--max-workers", args.max_workers), ("--max-tasks", args.max_tasks),
                        ("--max-body-kb", args.max_body_kb)):
        require(value >= 1, flag, f"must be >= 1, got {value}")
    require(args.max_body_kb <= MAX_BODY_KB, "--max-body-kb", f"{args.max_body_kb:,} KiB is over the limit of "
            f"{MAX_BODY_KB:,}", "a request body is held in memory while it is read")
    config = served_config(args)
    limits = Limits(max_workers=args.max_workers, max_tasks=args.max_tasks, max_body_bytes=args.max_body_kb * 1024)
    spec = ServiceSpec(policy=_policy_argument(args.policy), world=config.world, data_dir=_data_dir(args.data_dir),
                       cache_dir=os.environ.get("RLCS_CACHE_DIR"), limits=limits)
    print(f"loading {args.policy} on the csc world ...", flush=True)
    from rl_cs.serve.assigner import Assigner

    Assigner(spec.policy, spec.world, spec.data_dir, spec.limits, spec.cache_dir)  # the replica's set-up, here
    check_port(args.port)
    return spec


def served_config(args):
    """The experiment config whose world is served: ``--config`` (default: the quick config, or a checkpoint's
    own experiment config) with the ``--set`` overrides."""
    from rl_cs.evaluation import experiment_config

    checkpoint = Path(args.policy)
    world = registry.get_world(args.world)
    if checkpoint.exists():
        _refuse_other_world(checkpoint)
    if args.config or not checkpoint.exists():
        return world.load_config(args.config, args.set)
    config = experiment_config(checkpoint.resolve(), world.name)
    for item in args.set:
        key, sep, text = item.partition("=")
        require(bool(sep) and bool(key.strip()), f"--set {item}", "expected KEY=VALUE", "e.g. --set world.range_m=4000")
        config = with_override(config, key.strip(), parse_value(text), f"--set {item}")
        config.validate(f"--set {item}")
    return config


def _refuse_other_world(checkpoint: Path) -> None:
    """A checkpoint of another world's experiment, or of DyPS (several modules, a per-episode mapping that a
    stateless request cannot carry): refused by name (evaluate would suggest --world)."""
    record = checkpoint.resolve().parent.parent / "experiment.json"
    try:
        stored = json.loads(record.read_text())
        trained_on, method = stored.get("world"), stored.get("method")
    except (OSError, ValueError, AttributeError):
        return  # not an experiment folder: load_actor says so
    require(not str(method).startswith("dyps"), str(checkpoint),
            f"a checkpoint of '{method}', which acts through several group modules and a per-episode selector: "
            "`rl-cs serve` serves one shared policy module per request",
            "serve an ippo, cafe, ca-nofe, ir, ices or relara checkpoint; evaluate DyPS with rl-cs evaluate")
    require(trained_on in (None, *SERVED_WORLDS), str(checkpoint),
            f"a checkpoint of world '{trained_on}': `rl-cs serve` serves {', '.join(SERVED_WORLDS)} policies only",
            "give a checkpoint of a csc experiment, or a csc heuristic (greedy, greedy-coord, pau, random)")


def _policy_argument(policy: str) -> str:
    """A checkpoint folder as an absolute path (the replica's working directory is not ours)."""
    path = Path(policy)
    return str(path.resolve()) if path.exists() else policy


def _data_dir(data_dir: str | None) -> str | None:
    return str(Path(data_dir).resolve()) if data_dir else None


def check_port(port: int) -> None:
    """Refuse a port this process cannot listen on at 127.0.0.1 (in use, or privileged)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server will
        try:
            probe.bind((HOST, port))
        except PermissionError:
            raise InputError("--port", f"no permission to listen on port {port}",
                             "ports below 1024 need root: use e.g. --port 8000") from None
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                other = port + 1 if port < 65535 else 8000
                raise InputError("--port", f"port {port} on {HOST} is already in use",
                                 f"stop what listens there, or pick another port (e.g. --port {other})") from None
            raise InputError("--port", f"cannot listen on {HOST}:{port} ({error.strerror})") from None


def start(spec: ServiceSpec, port: int, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Ray (local, loopback: rl_cs.experiment.ray_session), Serve's HTTP proxy on HOST:port, the deployment;
    returns once GET /health answers."""
    from ray import serve

    from rl_cs.experiment.ray_session import start_ray

    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    start_ray()
    serve.start(http_options={"host": HOST, "port": port})
    deployment = serve.deployment(AssignmentService, name="assign", num_replicas=1,
                                  ray_actor_options={"num_cpus": 0})
    serve.run(deployment.bind(spec), name=APP_NAME, route_prefix="/")
    wait_until_ready(port, timeout_s)


def wait_until_ready(port: int, timeout_s: float) -> dict:
    """GET /health until it answers 200 (the proxy learns its routes shortly after the deployment is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not answer on http://{HOST}:{port}/health within "
                                   f"{timeout_s:.0f} s") from None
            time.sleep(0.25)


def stop() -> None:
    """Serve's deployment, proxy and controller, then Ray (if this process started it)."""
    import ray

    if not ray.is_initialized():
        return
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class _interrupts_ignored:
    """A second Ctrl-C while shutting down would leave Ray half-stopped: ignore it until shutdown is done."""

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)
        return False
