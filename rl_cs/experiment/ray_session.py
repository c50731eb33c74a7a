"""Ray start-up for every world: join the cluster named by RAY_ADDRESS, else start a local Ray bound to
loopback.

RAY_ADDRESS is set by `ray job submit` (the job's driver gets the GCS address) and by cluster/submit_train.py
under `ray submit` (``auto``: the cluster started on that head). Without it, a run starts a Ray of its own
(``address="local"``): plain ``ray.init()`` would join whichever cluster `ray start` last started on the
machine (the address file in Ray's temp dir), a cluster whose servers may listen beyond loopback, and with the
loopback node address below would not find its raylet there. On a cluster's head, set RAY_ADDRESS=auto to join.
Either way the trial actors' own output stays in Ray's logs (the dashboard, `ray logs`), not the driver's:
Tune's progress table and each trial failure's error line (tune_runner) are what the run prints.

Ray 2.60 binds its gRPC servers (GCS, the raylet's node and object managers, every worker's core-worker
server) to loopback only when the node's IP address is a loopback address, and to all interfaces (``::``)
otherwise; the runtime-env agent binds to the node IP. ``ray.init(_node_ip_address="127.0.0.1")`` alone
does not help: ray.init replaces a loopback address by the machine's routable one unless Ray's local-only
switch is set -- ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the setting Ray uses by default on macOS and
Windows (``ray._private.ray_constants.ENABLE_RAY_CLUSTER``). A local run sets it (for the processes Ray
starts, through the environment, and for this one, whose copy was read when ray was imported) and asks for
127.0.0.1, so nothing of a local run listens beyond loopback. Token authentication stays as Ray has it.
"""

from __future__ import annotations

import os
import sys

LOOPBACK = "127.0.0.1"
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
DASHBOARD_ENV = "RLCS_DASHBOARD"
"""Set to a port (e.g. 8265) to start the Ray dashboard with a local run, on 127.0.0.1 at that port; unset: no
dashboard (it costs a few processes and ~0.5 s at start)."""


def start_ray() -> None:
    """Join the cluster named by RAY_ADDRESS (a `ray job`'s driver; ``auto`` under `ray submit`), else start a
    new local Ray whose processes listen on 127.0.0.1 only (never joining one that `ray start` left running)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    _local_only()
    port = dashboard_port()
    ray.init(address="local", include_dashboard=port is not None, dashboard_host=LOOPBACK,
             dashboard_port=port or 8265, log_to_driver=False, configure_logging=False, _node_ip_address=LOOPBACK)
    if port is not None:
        print(f"rl-cs: Ray dashboard on http://{LOOPBACK}:{port} (token: ~/.ray/auth_token)", file=sys.stderr,
              flush=True)


def dashboard_port() -> int | None:
    """The dashboard port asked for by RLCS_DASHBOARD (None: no dashboard); a bad value is an InputError."""
    from rl_cs.errors import require

    text = os.environ.get(DASHBOARD_ENV, "").strip()
    if not text:
        return None
    require(text.isdigit() and 1024 <= int(text) <= 65535, DASHBOARD_ENV, f"'{text}' is not a port number",
            "set it to a free port from 1024 to 65535, e.g. RLCS_DASHBOARD=8265, or unset it")
    return int(text)


def _local_only() -> None:
    """Ray's local-only mode: its node IP (and with it every server it starts) on loopback."""
    from ray._private import ray_constants

    os.environ[LOCAL_ONLY_ENV] = "0"  # for the GCS, raylet and workers this process starts
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process read the variable when it imported ray
