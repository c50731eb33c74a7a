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

LOOPBACK = "127.0.0.1"
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


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
    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address=LOOPBACK)


def _local_only() -> None:
    """Ray's local-only mode: its node IP (and with it every server it starts) on loopback."""
    from ray._private import ray_constants

    os.environ[LOCAL_ONLY_ENV] = "0"  # for the GCS, raylet and workers this process starts
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process read the variable when it imported ray
