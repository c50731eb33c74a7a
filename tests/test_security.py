"""Security (issue 8): a trained policy is loaded from its weights alone plus the experiment's typed config,
never from a pickle (a crafted checkpoint cannot run code), and a local Ray run listens on loopback only."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule, RLModuleSpec

from envs.csc import CSCEnv, env_config
from envs.csc_observation import ObsLayout
from policies.attention import AttentionActorCritic
from rl_cs.cli import main
from rl_cs.config import to_dict
from rl_cs.evaluation import WEIGHTS_FILE, ModuleActor, load_actor, write_weights
from rl_cs.experiment.config import load_experiment

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "configs" / "csc_tiny.yaml")
SHARED = Path("learner_group") / "learner" / "rl_module" / "shared"


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return stopped.value.code


class CreatesFile:
    """Unpickling this object calls ``open(path, "w")``: the file appearing proves a pickle was loaded."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def policy_module(config, seed: int = 0) -> AttentionActorCritic:
    """A full (learner-side) policy module of ``config``, as RLlib builds it, with seeded random weights."""
    layout = ObsLayout(**config.policy_model_config()["layout"])
    torch.manual_seed(seed)
    return RLModuleSpec(module_class=AttentionActorCritic, model_config=config.policy_model_config(),
                        observation_space=gym.spaces.Box(-np.inf, np.inf, (layout.size,), np.float32),
                        action_space=gym.spaces.Discrete(layout.num_actions)).build()


def make_experiment(root: Path, config, module=None, weights: bool = True) -> Path:
    """An experiment folder as `rl-cs train` lays it out (experiment.json, a trial's params.json, one
    checkpoint with RLlib's pickled module files and, if ``weights``, policy_weights.pt); returns the checkpoint."""
    folder = root / "results" / "ippo-csc"
    checkpoint = folder / "PPO_csc_00000_0_seed=0" / "checkpoint_000000"
    checkpoint.mkdir(parents=True)
    (folder / "experiment.json").write_text(json.dumps(
        {"world": "csc", "method": "ippo", "data_dir": None, "config": to_dict(config), "seeds": [0]}))
    (checkpoint.parent / "params.json").write_text(json.dumps({"env_config": {"world": to_dict(config.world)}}))
    module = module or policy_module(config)
    module.save_to_path(str(checkpoint / SHARED))  # RLlib's own (pickle) format, as in a real checkpoint
    if weights:
        write_weights(module.get_state(), checkpoint / WEIGHTS_FILE)
    return checkpoint


def plant_pickles(checkpoint: Path, marker: Path) -> list[Path]:
    """Replace every pickle RLlib reads from a checkpoint by one that creates ``marker`` when unpickled."""
    payload = pickle.dumps(CreatesFile(marker))
    planted = []
    for folder in (checkpoint, checkpoint / "learner_group", checkpoint / "learner_group" / "learner",
                   checkpoint / SHARED.parent, checkpoint / SHARED):
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("class_and_ctor_args.pkl", "state.pkl"):
            planted.append(folder / name)
    planted += [checkpoint / "algorithm_state.pkl", checkpoint / SHARED / "module_state.pkl",
                checkpoint / SHARED.parent / "module_state.pkl"]
    for path in planted:
        path.write_bytes(payload)
    (checkpoint / "rllib_checkpoint.json").write_text(json.dumps({"type": "Algorithm", "format": "cloudpickle"}))
    return planted


@pytest.fixture(scope="module")
def config():
    return load_experiment(TINY)


@pytest.fixture(scope="module")
def observations(config):
    """Real observations (with their action masks) of the tiny world's first decision steps."""
    env = CSCEnv(env_config(config.world))
    obs, _ = env.reset(seed=7)
    rows = list(obs.values())
    for _ in range(3):
        obs, *_ = env.step({agent: 0 for agent in obs})
        rows += list(obs.values())
    return torch.from_numpy(np.stack(rows))


def test_weights_give_the_same_actions_as_rllibs_loader(tmp_path, config, observations):
    checkpoint = make_experiment(tmp_path, config, policy_module(config, seed=3))
    ours = load_actor(str(checkpoint))
    rllib = ModuleActor(RLModule.from_checkpoint(checkpoint / SHARED).eval())  # trusted: we wrote it
    assert ours.module.inference_only and not hasattr(ours.module, "critic")
    with torch.no_grad():
        logits = [actor.module.forward_inference({Columns.OBS: observations})[Columns.ACTION_DIST_INPUTS]
                  for actor in (ours, rllib)]
    assert torch.equal(*logits)
    obs = {f"w{i}": row.numpy() for i, row in enumerate(observations)}
    for deterministic in (False, True):
        ours.deterministic = rllib.deterministic = deterministic
        for seed in (0, 1):
            ours.reset(seed)
            rllib.reset(seed)
            assert ours.act(None, obs) == rllib.act(None, obs)


def test_the_planted_pickles_would_run_code(tmp_path):
    """The payload is live: unpickling it (as RLlib's loader does) creates the file."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(CreatesFile(marker)))
    assert marker.exists()


@pytest.mark.parametrize("weights", [True, False], ids=["with-weights", "pickles-only"])
def test_malicious_pickles_in_a_checkpoint_never_run(tmp_path, config, capsys, weights):
    checkpoint = make_experiment(tmp_path, config, weights=weights)
    marker = tmp_path / "pwned"
    plant_pickles(checkpoint, marker)
    code = cli("evaluate", str(checkpoint), "--world", "csc", "--config", TINY)
    out, err = capsys.readouterr()
    assert not marker.exists(), "evaluate unpickled a file of the checkpoint"
    assert "Traceback" not in out + err
    if weights:  # the policy comes from its weights; the pickles beside them are never opened
        assert code == 0 and "revenue" in out
    else:
        assert code == 2 and WEIGHTS_FILE in err and "pickle" in err and str(checkpoint) in err


def test_a_weights_file_that_is_a_pickle_of_code_is_refused(tmp_path, config, capsys):
    checkpoint = make_experiment(tmp_path, config)
    marker = tmp_path / "pwned"
    torch.save({"actor.own.weight": CreatesFile(marker)}, checkpoint / WEIGHTS_FILE)
    assert cli("evaluate", str(checkpoint), "--world", "csc", "--config", TINY) == 2
    err = capsys.readouterr().err
    assert not marker.exists(), "torch.load ran the weights file's pickle"
    assert "not a policy weights file" in err and "Traceback" not in err


def _garbage(config):
    """(id, bytes or a writer) of weights files that must be refused with exit 2."""
    module = policy_module(config)
    state = {name: torch.as_tensor(value) for name, value in module.get_state().items()}
    other = policy_module(load_experiment(TINY, ["model.embed_dim=8", "model.num_heads=2"]))
    nan = {**state, "score_none.bias": torch.full_like(state["score_none.bias"], float("nan"))}
    return {
        "random bytes": os.urandom(4096),
        "empty file": b"",
        "truncated zip": b"PK\x03\x04 truncated",
        "a list": [1, 2, 3],
        "an empty dict": {},
        "actor weights missing": {k: v for k, v in state.items() if not k.startswith("actor.")},
        "another network's shapes": {name: torch.as_tensor(v) for name, v in other.get_state().items()},
        "NaN weights": nan,
    }


@pytest.mark.parametrize("case", ["random bytes", "empty file", "truncated zip", "a list", "an empty dict",
                                  "actor weights missing", "another network's shapes", "NaN weights"])
def test_garbage_weights_exit_2_with_a_message(tmp_path, config, capsys, case):
    checkpoint = make_experiment(tmp_path, config)
    content = _garbage(config)[case]
    path = checkpoint / WEIGHTS_FILE
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    assert cli("evaluate", str(checkpoint), "--world", "csc", "--config", TINY) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert str(path) in err, err


def test_a_checkpoint_outside_its_experiment_is_refused(tmp_path, config, capsys):
    checkpoint = make_experiment(tmp_path, config)
    (checkpoint.parent.parent / "experiment.json").unlink()
    assert cli("evaluate", str(checkpoint), "--world", "csc", "--config", TINY) == 2
    assert "not inside an rl-cs experiment folder" in capsys.readouterr().err


def test_a_world_with_other_observation_sizes_is_refused(tmp_path, config, capsys):
    checkpoint = make_experiment(tmp_path, config)
    assert cli("evaluate", str(checkpoint), "--world", "csc", "--config", TINY,
               "--set", "world.num_optional_tasks=4") == 2
    assert "trained on observations" in capsys.readouterr().err


@pytest.mark.slow
def test_training_writes_weights_that_evaluate_like_rllibs_checkpoint(tmp_path, config, observations):
    """A real run: every checkpoint holds policy_weights.pt (readable weights-only), the held-out evaluation
    ran from it, and it acts exactly as RLlib's own checkpoint of the same iteration."""
    assert cli("train", "ippo", "--world", "csc", "--config", TINY, "--results-dir", str(tmp_path),
               "--no-compare") == 0
    trial = next((tmp_path / "ippo-csc").glob("PPO_csc_*"))
    checkpoints = sorted(trial.glob("checkpoint_*"))
    assert checkpoints and all((c / WEIGHTS_FILE).is_file() for c in checkpoints)
    assert (trial / "heldout.json").exists()
    state = torch.load(checkpoints[-1] / WEIGHTS_FILE, weights_only=True)
    assert any(name.startswith("critic.") for name in state), "the file holds the whole policy module"
    ours = load_actor(str(checkpoints[-1])).module
    rllib = RLModule.from_checkpoint(checkpoints[-1] / SHARED)  # trusted: this test just trained it
    with torch.no_grad():
        assert torch.equal(ours.forward_inference({Columns.OBS: observations})[Columns.ACTION_DIST_INPUTS],
                           rllib.forward_inference({Columns.OBS: observations})[Columns.ACTION_DIST_INPUTS])


LISTENERS = textwrap.dedent("""
    import json, os, sys
    import ray
    import psutil  # Ray's vendored copy (ray/thirdparty_files), on sys.path once ray is imported
    from rl_cs.experiment.ray_session import start_ray

    start_ray()
    try:
        @ray.remote
        def pid():
            return os.getpid()

        ray.get([pid.remote() for _ in range(2)])  # workers up
        tree = {psutil.Process().pid} | {p.pid for p in psutil.Process().children(recursive=True)}
        found = []
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.pid in tree:
                found.append({"process": psutil.Process(conn.pid).name(), "ip": conn.laddr.ip,
                              "port": conn.laddr.port})
        print("LISTENERS " + json.dumps(found))
    finally:
        ray.shutdown()
""")


def _loopback(ip: str) -> bool:
    import ipaddress

    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or address).is_loopback


@pytest.mark.slow
def test_a_local_ray_listens_on_loopback_only():
    """Every TCP socket in LISTEN state of the local run's processes (this driver, gcs_server, raylet, its
    agents and workers: the driver's process tree) is bound to 127.0.0.1 / ::1. Before ray_session, GCS,
    raylet, workers and the driver listened on :: (all interfaces), the runtime-env agent on the node IP."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-c", LISTENERS], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("LISTENERS ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    listeners = json.loads(lines[-1].removeprefix("LISTENERS "))
    processes = {entry["process"] for entry in listeners}
    assert {"gcs_server", "raylet"} <= processes, listeners  # the check saw Ray's servers
    exposed = [entry for entry in listeners if not _loopback(entry["ip"])]
    assert not exposed, f"listening beyond loopback: {exposed}"


@pytest.mark.parametrize("value", ["yes", "80", "70000", "-1"])
def test_a_bad_dashboard_port_exits_2_before_anything_starts(value, tmp_path, capsys, monkeypatch):
    """RLCS_DASHBOARD (the opt-in Ray dashboard of a local run, on 127.0.0.1) must be a port number from
    1024 to 65535; anything else is refused before Ray starts or a results folder is made."""
    monkeypatch.setenv("RLCS_DASHBOARD", value)
    assert cli("train", "greedy", "--world", "csc", "--results-dir", str(tmp_path / "results")) == 2
    assert "RLCS_DASHBOARD" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
