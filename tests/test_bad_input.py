"""The bad-input catalogue (issue 8): every row is one bad input to `rl-cs train | evaluate | report | bench |
check | list` on either world, run in-process through ``rl_cs.cli.main``. Each must end with exit code 2, one
``rl-cs: error:`` message on stderr that names where the value came from (the YAML file, the ``--set``, the
flag, the CSV file and column, the results file) and no traceback, and it must write nothing: the test folder
(the working directory, results dirs, ``--out``/``--log`` targets and the preprocessing cache) is identical
before and after, and Ray is never started.

Rows are grouped by kind (``Bad.kind``): a new world adds its rows to each group. Files a row needs are
declared in ``files`` (relative path -> text, bytes, ``DIR`` or a writer function) and created in the row's
temporary folder before the snapshot; ``{tmp}`` in an argument is that folder. Cases already covered by
tests/test_registry.py, tests/test_cli_csc.py and tests/test_sensing_cli.py are not repeated here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from rl_cs.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "configs" / "csc_tiny.yaml")
DIR = object()
"""A ``files`` value: make an (empty) folder."""
SENSING_QUICK = ("--set", "synthetic.num_cycles=12", "--set", "calibration.seeds=1", "--set", "grid.workers=1")
"""Keeps a sensing run short should a row be wrongly accepted."""


# ---------------------------------------------------------------------------------------------- data files

PIEMONTE_COLUMNS = ("Station.ID", "Date", "A", "UTMX", "UTMY", "WS", "TEMP", "HMIX", "PREC", "EMI", "PM10")
PIEMONTE_FILE = "pm/Piemonte_data_byday.csv"


def piemonte(stations: int = 10, days: int = 3, edit: dict[str, str] | None = None, drop: str = "",
             header_only: bool = False) -> str:
    """A small Piemonte_data_byday.csv shaped like the real one (quoted header and dates, dd/mm/yy, UTM km,
    Kelvin, 'NA' for a missing PM10); ``edit`` replaces column values in the second data row."""
    columns = [c for c in PIEMONTE_COLUMNS if c != drop]
    lines = [",".join(f'"{c}"' for c in columns)]
    for day in range(days if not header_only else 0):
        for station in range(1, stations + 1):
            row = {"Station.ID": str(station), "Date": f'"{day + 1:02d}/10/05"', "A": "95.2",
                   "UTMX": f"{420 + 7.5 * station:.2f}", "UTMY": f"{4950 + 5.1 * station ** 1.5:.2f}",
                   "WS": f"{0.8 + 0.05 * station:.2f}", "TEMP": f"{285 + 0.3 * station - day:.2f}", "HMIX": "1294.6",
                   "PREC": "0", "EMI": f"{20 + station:.2f}", "PM10": "NA" if (station + day) % 7 == 0 else str(25 + station)}
            if edit and len(lines) == 2:
                row.update(edit)
            lines.append(",".join(row[c] for c in columns))
    return "\n".join(lines) + "\n"


OSM_NODES = [(i * 4 + j + 1, 30.660 + 0.002 * i, 104.060 + 0.002 * j) for i in range(4) for j in range(4)]


def chengdu_osm() -> str:
    """A 4x4 street grid (about 200 m blocks) in central Chengdu, OSM XML."""
    nodes = "".join(f'<node id="{n}" lat="{lat}" lon="{lon}" version="1"/>' for n, lat, lon in OSM_NODES)
    ways, way_id = [], 100
    for line in [[i * 4 + j + 1 for j in range(4)] for i in range(4)] + [[i * 4 + j + 1 for i in range(4)] for j in range(4)]:
        way_id += 1
        refs = "".join(f'<nd ref="{n}"/>' for n in line)
        ways.append(f'<way id="{way_id}" version="1">{refs}<tag k="highway" v="residential"/></way>')
    return f'<?xml version="1.0" encoding="UTF-8"?><osm version="0.6">{nodes}{"".join(ways)}</osm>'


REQUEST_HEADER = ("order_id,origin_id,origin_lat,origin_lng,dest_id,dest_lat,dest_lng,trip_distance,start_time,"
                  "origin_grid_id,dest_grid_id,itinerary_node_list,itinerary_segment_dis_list,trip_time,"
                  "designed_reward,cancel_prob")


def requests(count: int = 40, edit: dict[str, str] | None = None, drop: str = "", header_only: bool = False) -> str:
    """requests.csv shaped like the real one (the columns the loader reads, and the ones it ignores)."""
    columns = [c for c in REQUEST_HEADER.split(",") if c != drop]
    lines = [",".join(columns)]
    for k in range(count if not header_only else 0):
        _, lat, lon = OSM_NODES[(k * 5) % 16]
        row = {c: "0" for c in columns}
        row.update({"order_id": str(k), "origin_lat": f"{lat + 0.0003:.7f}", "origin_lng": f"{lon - 0.0002:.7f}",
                    "dest_lat": f"{lat:.7f}", "dest_lng": f"{lon:.7f}", "trip_distance": f"{1.5 + k % 4}",
                    "start_time": str(21600 + 7 * k), "itinerary_node_list": '"[1, 2]"',
                    "itinerary_segment_dis_list": '"[0.1]"'})
        if edit and len(lines) == 2:
            row.update(edit)
        lines.append(",".join(row[c] for c in columns))
    return "\n".join(lines) + "\n"


def poi(edit: dict[str, str] | None = None) -> str:
    lines = [",id,wgslng,wgslat,typei"]
    for k in range(32):
        _, lat, lon = OSM_NODES[k % 16]
        row = {"": str(k), "id": f"B0FF{k:06d}", "wgslng": f"{lon + 0.0001:.6f}", "wgslat": f"{lat:.6f}",
               "typei": f"{k % 16:02d}"}
        if edit and len(lines) == 2:
            row.update(edit)
        lines.append(",".join(row.values()))
    return "\n".join(lines) + "\n"


def chengdu(requests_text: str | bytes | None = None, poi_text: str | bytes | None = None,
            osm: bool = True) -> dict:
    files = {"cd/requests.csv": requests() if requests_text is None else requests_text,
             "cd/poi.csv": poi() if poi_text is None else poi_text}
    if osm:
        files["cd/centre.osm"] = chengdu_osm()
    return files


def _sensing_results(folder: Path) -> None:
    """A minimal finished sensing grid (what `rl-cs train qcota --world sensing` writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.json").write_text(json.dumps({"world": "sensing", "kind": "grid", "method": "qcota",
                                                        "data": "synthetic field", "calibration": None}))
    runs = pd.DataFrame([{"scheme": scheme, "num_attributes": 2, "inference": "knn", "participants": 8, "seed": 0,
                          "error": error, "cost_km": 10 * error, "cpu_seconds": 0.1}
                         for scheme, error in (("qcota", 0.15), ("uns-ta", 0.2))])
    runs.to_csv(folder / "runs.csv", index=False)
    cycles = pd.DataFrame([{**{k: row[k] for k in ("scheme", "num_attributes", "inference", "participants", "seed")},
                            "cycle": cycle, "epsilon": row["error"]} for row in runs.to_dict("records")
                           for cycle in range(3)])
    cycles.to_parquet(folder / "cycles.parquet", index=False)


def sensing_results(**replace: str | bytes | None) -> dict:
    """The minimal sensing results folder ``sr``, with files replaced (text/bytes) or removed (None)."""
    files: dict = {"sr": _sensing_results}
    for name, content in replace.items():
        files[f"sr/{name}"] = content
    return files


CSC_EXPERIMENT = {"world": "csc", "method": "greedy", "config": {"experiment": {"methods": []}, "grid": {}}, "seeds": [0]}


def csc_results(result_lines: str | None = None, experiment: str | bytes | None = None) -> dict:
    """A minimal finished CSC experiment ``cr`` (experiment.json and one Tune trial folder)."""
    lines = result_lines if result_lines is not None else json.dumps(
        {"training_iteration": 1, "env_runners": {"revenue": 120.0, "completion_rate": 0.5}}) + "\n"
    return {"cr/experiment.json": json.dumps(CSC_EXPERIMENT) if experiment is None else experiment,
            "cr/greedy_0/params.json": json.dumps({"seed": 0, "env_config": {"world": {"num_workers": 20,
                                                                                      "num_tasks": 20}}}),
            "cr/greedy_0/result.json": lines}


# ---------------------------------------------------------------------------------------------- the catalogue

@dataclass(frozen=True)
class Bad:
    kind: str
    """The group: yaml, set-training, set-world, set-run, set-sensing, flags, paths, checkpoint, report,
    piemonte, chengdu, list."""
    argv: tuple[str, ...]
    says: tuple[str, ...]
    """Substrings of stderr: the source (file, --set, flag, column) and the field or problem."""
    files: dict = field(default_factory=dict)
    id: str = ""

    def param(self):
        return pytest.param(self, id=self.id or self.default_id())

    def default_id(self) -> str:
        """kind:command world args (the tiny config, results dir and quick sensing settings left out), plus
        the text of a YAML file the row writes."""
        text = " ".join(self.argv).replace(" ".join(SENSING_QUICK), "").replace("--results-dir {tmp}/results", "")
        text = text.replace(f"--config {TINY}", "").replace("{tmp}/", "")
        yaml = [content for name, content in self.files.items() if name.endswith(".yaml")]
        if yaml:
            shown = "<bytes>" if isinstance(yaml[0], bytes) else yaml[0].strip()[:40] or "empty"
            text += f" [{shown}]"
        return f"{self.kind}:{' '.join(text.split())}"


def csc(command: str, *argv: str, config: str = TINY) -> tuple[str, ...]:
    """A CSC command on the tiny test config (train: IPPO, so a wrongly accepted row reaches the Ray guard)."""
    head = {"train": ("train", "ippo"), "evaluate": ("evaluate", "greedy"), "bench": ("bench",),
            "check": ("check", "csc")}[command]
    world = () if command == "check" else ("--world", "csc")
    results = ("--results-dir", "{tmp}/results") if command == "train" else ()
    return (*head, *world, "--config", config, *results, *argv)


def sensing(command: str, *argv: str) -> tuple[str, ...]:
    head = {"train": ("train", "qcota"), "evaluate": ("evaluate", "uns-ta"), "bench": ("bench",),
            "check": ("check", "sensing")}[command]
    world = () if command == "check" else ("--world", "sensing")
    results = ("--results-dir", "{tmp}/results") if command == "train" else ()
    return (*head, *world, *results, *argv, *SENSING_QUICK)


def sets(*pairs: str) -> tuple[str, ...]:
    return tuple(item for pair in pairs for item in ("--set", pair))


LATIN1_YAML = b"world:\n  num_workers: 20  # caf\xe9\n"
UTF16_YAML = "world:\n  num_workers: 20\n".encode("utf-16")
COMMANDS = ("train", "evaluate", "bench", "check")

CATALOGUE: list[Bad] = []

# --- YAML files: decodable, non-empty, sections, values; every error names the file -----------------------
for command in COMMANDS:
    CATALOGUE += [
        Bad("yaml", csc(command, config="{tmp}/latin1.yaml"),
            ("latin1.yaml", "not UTF-8"), {"latin1.yaml": LATIN1_YAML}),
        Bad("yaml", sensing(command, "--config", "{tmp}/latin1.yaml"), ("latin1.yaml", "not UTF-8"),
            {"latin1.yaml": LATIN1_YAML}),
    ]
CATALOGUE += [
    Bad("yaml", ("check", "csc", "--config", "{tmp}/utf16.yaml"), ("utf16.yaml", "not UTF-8"), {"utf16.yaml": UTF16_YAML}),
    Bad("yaml", ("train", "ippo", "--config", "{tmp}/empty.yaml", "--results-dir", "{tmp}/results"),
        ("empty.yaml", "empty"), {"empty.yaml": ""}),
    Bad("yaml", ("evaluate", "greedy", "--config", "{tmp}/empty.yaml"), ("empty.yaml", "empty"), {"empty.yaml": "\n# nothing\n"}),
    Bad("yaml", sensing("train", "--config", "{tmp}/empty.yaml"), ("empty.yaml", "empty"), {"empty.yaml": ""}),
    Bad("yaml", ("train", "ippo", "--config", "{tmp}/list.yaml", "--results-dir", "{tmp}/results"),
        ("list.yaml", "expected sections"), {"list.yaml": "- world\n- training\n"}),
    Bad("yaml", sensing("train", "--config", "{tmp}/list.yaml"), ("list.yaml", "expected sections"),
        {"list.yaml": "- world\n"}),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "training.clip_param", "finite"),
        {"bad.yaml": "training: {clip_param: .nan}\n"}),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "world.range_m", "finite"),
        {"bad.yaml": "world: {range_m: .inf}\n"}),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "experiment.methods", "expected a list"),
        {"bad.yaml": "experiment: {methods: greedy}\n"}),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "training.entropy_coeff"),
        {"bad.yaml": "training: {entropy_coeff: -5}\n"}),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "evaluation.seed"),
        {"bad.yaml": "evaluation: {seed: -1}\n"}),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "world", "expected a mapping"),
        {"bad.yaml": "world: 5\n"}),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "grid.training.lr", "only world fields"),
        {"bad.yaml": "grid: {training.lr: [0.001, 0.01]}\n"}, id="yaml:grid over a training field"),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "grid.world.num_workers", "list"),
        {"bad.yaml": "grid: {world.num_workers: 5}\n"}),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "grid.world.num_workers=0"),
        {"bad.yaml": "grid: {world.num_workers: [10, 0]}\n"}),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "num_wokers"),
        {"bad.yaml": "grid: {world.num_wokers: [10]}\n"}),
    Bad("yaml", csc("train", config="{tmp}/bad.yaml"), ("bad.yaml", "grid", "expected a mapping"),
        {"bad.yaml": "grid: [world.num_workers]\n"}),
    Bad("yaml", sensing("train", "--config", "{tmp}/bad.yaml"), ("bad.yaml", "world.cost_weight", "finite"),
        {"bad.yaml": "world: {cost_weight: .nan}\n"}),
    Bad("yaml", sensing("train", "--config", "{tmp}/bad.yaml"), ("bad.yaml", "grid.participants", "expected a list"),
        {"bad.yaml": "grid: {participants: 8}\n"}),
    Bad("yaml", sensing("train", "--config", "{tmp}/bad.yaml"), ("bad.yaml", "synthetic.num_cells"),
        {"bad.yaml": "synthetic: {num_cells: 1}\n"}),
    Bad("yaml", sensing("evaluate", "--config", "{tmp}/bad.yaml"), ("bad.yaml", "did you mean 'world'"),
        {"bad.yaml": "wrold: {num_participants: 4}\n"}),
    Bad("yaml", sensing("check", "--config", "{tmp}/bad.yaml"), ("bad.yaml", "world.num_participants"),
        {"bad.yaml": "world: {num_participants: 0}\n"}),
    Bad("yaml", sensing("bench", "--config", "{tmp}/bad.yaml"), ("bad.yaml", "not valid YAML"),
        {"bad.yaml": "world: [1, 2\n"}),
    Bad("yaml", sensing("train", "--config", "{tmp}/bad.yaml"), ("bad.yaml", "world.cycles"),
        {"bad.yaml": "world: {cycles: -3}\n"}),
]

# --- --set on PPO's fields: ranges checked before Ray starts (RLlib's own limits included) -------------------
for pair, says in [
    ("training.entropy_coeff=-5", "training.entropy_coeff"), ("training.clip_param=.nan", "finite"),
    ("training.clip_param=0", "training.clip_param"), ("training.clip_param=-0.2", "training.clip_param"),
    ("training.clip_param=3", "training.clip_param"),
    ("training.lr=0", "training.lr"), ("training.lr=-1e-3", "training.lr"), ("training.lr=.inf", "finite"),
    ("training.lr=5", "training.lr"), ("training.lr=fast", "expected a number"),
    ("training.gamma=0", "training.gamma"), ("training.gamma=1.5", "training.gamma"), ("training.gamma=.nan", "finite"),
    ("training.lambda_=-0.1", "training.lambda_"), ("training.lambda_=1.5", "training.lambda_"),
    ("training.vf_loss_coeff=-1", "training.vf_loss_coeff"), ("training.train_batch_size=0", "train_batch_size"),
    ("training.minibatch_size=0", "minibatch_size"), ("training.minibatch_size=1000", "minibatch_size"),
    ("training.num_epochs=0", "training.num_epochs"), ("training.num_env_runners=-1", "num_env_runners"),
    ("training.num_envs_per_env_runner=0", "num_envs_per_env_runner"), ("training.num_learners=-1", "num_learners"),
    ("training.rollout_fragment_length=-1", "rollout_fragment_length"),
    ("training.rollout_fragment_length=150", "rollout_fragment_length"),
    ("training.num_gpus_per_learner=-1", "num_gpus_per_learner"), ("training.torch_threads=0", "torch_threads"),
    ("training.train_batch_size=1.5", "expected an integer"),
    ("model.num_heads=3", "model.num_heads"), ("model.embed_dim=0", "model.embed_dim"),
    ("model.hidden_dim=-4", "model.embed_dim/hidden_dim"),
]:
    CATALOGUE.append(Bad("set-training", csc("train", *sets(pair)), (f"--set {pair}", says)))
CATALOGUE += [
    Bad("set-training", csc("check", *sets("training.entropy_coeff=-5")), ("--set training.entropy_coeff=-5",)),
    Bad("set-training", csc("bench", *sets("training.clip_param=0")), ("--set training.clip_param=0",)),
    Bad("set-training", csc("evaluate", *sets("training.gamma=2")), ("--set training.gamma=2",)),
]

# --- --set on the CSC world: finite, in range, and sizes the machine can hold (refused before allocating) ----
for pair, says in [
    ("world.range_m=.inf", "finite"), ("world.range_m=0", "world.range_m"), ("world.speed_mps=.nan", "finite"),
    ("world.city.rows=100000", "world.city"), ("world.city.cols=1", "world.city.rows/cols"),
    ("world.city.spacing_m=0", "world.city.spacing_m"), ("world.city.jitter=0.7", "world.city.jitter"),
    ("world.synthetic_tasks.num_tasks=10000000000", "world.synthetic_tasks.num_tasks"),
    ("world.synthetic_tasks.num_tasks=0", "world.synthetic_tasks.num_tasks"),
    ("world.synthetic_tasks.num_pois=10000000000", "world.synthetic_tasks.num_pois"),
    ("world.synthetic_tasks.num_hotspots=10000000000", "world.synthetic_tasks.num_hotspots"),
    ("world.synthetic_tasks.mean_trip_km=.inf", "finite"),
    ("world.num_workers=1000000000", "world.num_workers"), ("world.num_tasks=1000000000", "world.num_tasks"),
    ("world.num_optional_tasks=0", "world.num_optional_tasks"), ("world.num_near_tasks=1000000", "world.num_near_tasks"),
    ("world.decision_interval_s=1e-9", "world.decision_interval_s"), ("world.max_episode_s=-1", "world.max_episode_s"),
    ("world.rules.poi_radius_m=0", "world.rules.poi_radius_m"), ("world.city.seed=-1", "world.city.seed"),
    ("world.synthetic_tasks.seed=-1", "world.synthetic_tasks.seed"), ("world.rules.expected_minutes=.nan", "finite"),
    ("world.reward=5", "expected text"), ("world.num_workers=1.5", "expected an integer"),
    ("world.num_workers=true", "expected an integer"), ("world=5", "expected a mapping"),
    ("world.city=3", "expected a mapping"),
]:
    CATALOGUE.append(Bad("set-world", csc("train", *sets(pair)), (f"--set {pair}", says)))
CATALOGUE += [
    Bad("set-world", csc("evaluate", *sets("world.city.rows=100000")), ("--set world.city.rows=100000",)),
    Bad("set-world", csc("check", *sets("world.synthetic_tasks.num_tasks=10000000000")),
        ("--set world.synthetic_tasks.num_tasks=10000000000",)),
    Bad("set-world", csc("bench", *sets("world.range_m=.inf")), ("--set world.range_m=.inf", "finite")),
]

# --- --set on the run, evaluation and grid sections, and the --set syntax itself -----------------------------
for pair, says in [
    ("evaluation.seed=-1", "evaluation.seed"), ("evaluation.episodes=0", "evaluation.episodes"),
    ("evaluation.deterministic=maybe", "expected true or false"),
    ("experiment.iterations=0", "experiment.iterations"), ("experiment.seeds=0", "experiment.seeds"),
    ("experiment.checkpoint_every=0", "experiment.checkpoint_every"),
    ("experiment.max_concurrent_trials=-1", "experiment.max_concurrent_trials"),
    ("grid=5", "expected a mapping"), ("grid.training.lr=[0.1, 0.2]", "only world fields"),
    ("grid.world.num_workers=[0]", "world.num_workers"), ("grid.world.num_workers=7", "list"),
    ("nosuch.field=1", "unknown field"), ("evaluation=[1]", "expected a mapping"),
]:
    CATALOGUE.append(Bad("set-run", csc("train", *sets(pair)), (f"--set {pair}", says)))
CATALOGUE += [
    Bad("set-run", ("train", "all", "--world", "csc", "--config", TINY, "--results-dir", "{tmp}/results",
                    *sets("experiment.methods=greedy")), ("--set experiment.methods=greedy", "expected a list")),
    Bad("set-run", csc("evaluate", *sets("evaluation.seed=-1")), ("--set evaluation.seed=-1", "evaluation.seed")),
    Bad("set-run", csc("train", "--set", "world.num_workers"), ("--set world.num_workers", "KEY=VALUE")),
    Bad("set-run", csc("train", "--set", "=5"), ("--set =5", "KEY=VALUE")),
]

# --- --set on the sensing world ------------------------------------------------------------------------------
for pair, says in [
    ("world.cost_weight=.nan", "finite"), ("world.cost_weight=-1", "world.cost_weight"),
    ("world.cost_weight=.inf", "finite"), ("world.num_participants=0", "world.num_participants"),
    ("world.attributes=WS", "expected a list"), ("world.attributes=[]", "world.attributes"),
    ("world.attributes=[WS, WS]", "world.attributes"), ("world.cycles=-1", "world.cycles"),
    ("world.normalisation=median", "did you mean"), ("world.inference.knn_k=0", "world.inference.knn_k"),
    ("synthetic.num_cells=1", "synthetic.num_cells"), ("synthetic.num_cells=10000000", "synthetic.num_cells"),
    ("synthetic.num_cycles=1000000000", "synthetic.num_cycles"),
    ("synthetic.length_scale_km=0", "synthetic.length_scale_km"), ("synthetic.box_km=[0, 10]", "synthetic.box_km"),
    ("synthetic.box_km=[100]", "synthetic.box_km"), ("synthetic.persistence=1", "synthetic.persistence"),
    ("synthetic.missing_fraction=.nan", "finite"), ("synthetic.seed=-1", "synthetic.seed"),
    ("grid.seeds=0", "grid.seeds"), ("grid.workers=-1", "grid.workers"), ("grid.workers=100000", "grid.workers"),
    ("grid.participants=[0]", "grid.participants"), ("grid.schemes=qcota", "expected a list"),
    ("grid.attribute_counts=[9]", "grid.attribute_counts"), ("sweep.metric=speed", "now search"),
    ("search.space={qcota.nope: {choice: [1]}}", "qcota.nope"), ("calibration.seeds=0", "calibration.seeds"),
    ("search.space.world.nope={choice: [1, 2]}", "world.nope"), ("qcota.delta=.nan", "finite"),
]:
    CATALOGUE.append(Bad("set-sensing", sensing("train", *sets(pair)), (f"--set {pair}", says)))
CATALOGUE += [
    Bad("set-sensing", sensing("evaluate", *sets("world.cost_weight=.nan")), ("--set world.cost_weight=.nan", "finite")),
    Bad("set-sensing", sensing("check", *sets("world.num_participants=0")), ("--set world.num_participants=0",)),
    Bad("set-sensing", sensing("bench", *sets("synthetic.num_cells=1")), ("--set synthetic.num_cells=1",)),
    Bad("set-sensing", sensing("evaluate", *sets("world.num_participants=30")), ("world.num_participants", "24 cells")),
]

# --- command-line flags ----------------------------------------------------------------------------------------
CATALOGUE += [
    Bad("flags", sensing("evaluate", "--seed", "-1"), ("--seed",)),
    Bad("flags", sensing("evaluate", "--episodes", "0"), ("--episodes",)),
    Bad("flags", csc("evaluate", "--episodes", "-3"), ("--episodes",)),
    Bad("flags", ("bench", "--world", "sensing", "--seconds", "-1"), ("--seconds",)),
    Bad("flags", csc("bench", "--seconds", "0"), ("--seconds",)),
    Bad("flags", csc("bench", "--seconds", "nan"), ("--seconds",)),
    Bad("flags", csc("bench", "--seconds", "inf"), ("--seconds",)),
    Bad("flags", sensing("bench", "--seconds", "inf"), ("--seconds",)),
    Bad("flags", csc("bench", "--workers", "0"), ("--workers",)),
    Bad("flags", csc("bench", "--tasks", "-5"), ("--tasks",)),
    Bad("flags", csc("bench", "--workers", "1000000000"), ("--workers",)),
    Bad("flags", csc("check", "--max-steps", "0"), ("--max-steps",)),
    Bad("flags", sensing("check", "--seed", "-1"), ("--seed",)),
    Bad("flags", csc("evaluate", "--seed", "abc"), ("--seed", "invalid int")),
    Bad("flags", csc("train", "--seeds", "-2"), ("--seeds",)),
    Bad("flags", csc("train", "--name", ".."), ("--name",)),
    Bad("flags", csc("train", "--name", "../escape"), ("--name",)),
    Bad("flags", sensing("train", "--name", ".."), ("--name",)),
    Bad("flags", ("frobnicate",), ("invalid choice",)),
    Bad("flags", (), ("required",)),
    Bad("flags", csc("train", "--resume", "--name", "never-ran"), ("--resume", "no experiment to resume")),
    Bad("flags", ("train", "greedy", "--world", "csc", "--config", TINY, "--resume", "--results-dir",
                  "{tmp}/nowhere/results"), ("--resume", "no experiment to resume")),
    Bad("flags", ("train", "ippo", "--world", "csc", "--config", TINY, "--resume", "--results-dir", "{tmp}/file"),
        ("--results-dir", "is a file"), {"file": "x"}),
]

# --- output places: a file, a folder (for --log), under /proc, or under a file ------------------------------
for world, command in (("csc", csc), ("sensing", sensing)):
    CATALOGUE += [
        Bad("paths", command("train", "--results-dir", "/proc/rl-cs-results"), ("--results-dir", "/proc")),
        Bad("paths", command("train", "--results-dir", "{tmp}/file/results"), ("--results-dir", "is a file"),
            {"file": "x"}),
        Bad("paths", command("evaluate", "--log", "{tmp}/logs"), ("--log", "folder"), {"logs": DIR}),
        Bad("paths", command("evaluate", "--log", "/proc/rl-cs/log.parquet"), ("--log", "/proc")),
        Bad("paths", command("evaluate", "--log", "{tmp}/file/log.parquet"), ("--log", "is a file"), {"file": "x"}),
    ]
for results, files in (("{tmp}/cr", csc_results()), ("{tmp}/sr", sensing_results())):
    CATALOGUE += [
        Bad("paths", ("report", results, "--out", "{tmp}/file"), ("--out", "is a file"), {**files, "file": "x"}),
        Bad("paths", ("report", results, "--out", "/proc/rl-cs-report"), ("--out", "/proc"), files),
        Bad("paths", ("report", results, "--out", "{tmp}/file/report"), ("--out", "is a file"), {**files, "file": "x"}),
    ]

# --- checkpoints given to evaluate -----------------------------------------------------------------------------
MODULE = "learner_group/learner/rl_module/shared"
CATALOGUE += [
    Bad("checkpoint", ("evaluate", "{tmp}/ckpt", "--world", "csc", "--config", TINY), ("ckpt",),
        {"ckpt/module_state.pkl": b"\x80\x04garbage, not a pickle"}, id="checkpoint:garbage module_state.pkl"),
    Bad("checkpoint", ("evaluate", "{tmp}/ckpt", "--world", "csc", "--config", TINY), ("ckpt",),
        {f"ckpt/{MODULE}/module_state.pkl": b"not a pickle at all"}, id="checkpoint:garbage nested module_state.pkl"),
    Bad("checkpoint", ("evaluate", "{tmp}/ckpt", "--world", "csc", "--config", TINY), ("ckpt",),
        {f"ckpt/{MODULE}/module_state.pt": b"PK\x03\x04 truncated zip"}, id="checkpoint:garbage module_state.pt"),
    Bad("checkpoint", ("evaluate", "{tmp}/ckpt", "--world", "csc", "--config", TINY), ("ckpt", "no trained RLModule"),
        {"ckpt": DIR}, id="checkpoint:empty folder"),
    Bad("checkpoint", ("evaluate", "{tmp}/file", "--world", "csc", "--config", TINY), ("file",),
        {"file": "x"}, id="checkpoint:a file"),
    Bad("checkpoint", ("evaluate", "{tmp}/ckpt", "--world", "sensing", *SENSING_QUICK), ("policy", "unknown method"),
        {f"ckpt/{MODULE}/module_state.pkl": b"x"}, id="checkpoint:sensing has no learned policy"),
]

# --- results folders given to report ---------------------------------------------------------------------------
CATALOGUE += [
    Bad("report", ("report", "{tmp}/cr"), ("experiment.json",), csc_results(experiment="[1, 2]"),
        id="report:experiment.json a JSON list"),
    Bad("report", ("report", "{tmp}/cr"), ("experiment.json", "utf-8"), csc_results(experiment=b'{"world": "cs\xe9"}'),
        id="report:experiment.json not UTF-8"),
    Bad("report", ("report", "{tmp}/cr"), ("experiment.json",), csc_results(experiment="{world: csc"),
        id="report:experiment.json not JSON"),
    Bad("report", ("report", "{tmp}/cr"), ("experiment.json", "world"), csc_results(experiment='{"method": "ippo"}'),
        id="report:experiment.json without world"),
    Bad("report", ("report", "{tmp}/cr"), ("experiment.json", "unknown world 'mars'"),
        csc_results(experiment='{"world": "mars"}'), id="report:unknown world"),
    Bad("report", ("report", "{tmp}/cr"), ("experiment.json", "world"), csc_results(experiment='{"world": 5}'),
        id="report:world not text"),
    Bad("report", ("report", "{tmp}/cr"), ("result.json", "not valid JSON"), csc_results(result_lines="{oops\n"),
        id="report:csc result.json garbage"),
    Bad("report", ("report", "{tmp}/cr"), ("result.json", "training_iteration"),
        csc_results(result_lines='{"env_runners": {}}\n'), id="report:csc result without iteration"),
    Bad("report", ("report", "{tmp}/cr"), ("params.json",),
        {**csc_results(), "cr/greedy_0/params.json": "[]"}, id="report:csc params.json a list"),
    Bad("report", ("report", "{tmp}/cr"), ("no Tune trial folders",),
        {"cr/experiment.json": json.dumps(CSC_EXPERIMENT)}, id="report:csc without trials"),
    Bad("report", ("report", "{tmp}/both"), ("mixes worlds",),
        {"both/a/experiment.json": json.dumps(CSC_EXPERIMENT), "both/b/experiment.json": '{"world": "sensing"}'},
        id="report:mixed worlds"),
    Bad("report", ("report", "{tmp}/file"), ("file",), {"file": "x"}, id="report:results is a file"),
    Bad("report", ("report", "{tmp}/sr"), ("runs.csv", "not found"), sensing_results(**{"runs.csv": None}),
        id="report:sensing without runs.csv"),
    Bad("report", ("report", "{tmp}/sr"), ("runs.csv",), sensing_results(**{"runs.csv": ""}),
        id="report:sensing runs.csv empty"),
    Bad("report", ("report", "{tmp}/sr"), ("runs.csv", "UTF-8"), sensing_results(**{"runs.csv": b"scheme\nqcot\xe9\n"}),
        id="report:sensing runs.csv not UTF-8"),
    Bad("report", ("report", "{tmp}/sr"), ("runs.csv", "error"), sensing_results(**{"runs.csv": "scheme,seed\nqcota,0\n"}),
        id="report:sensing runs.csv missing columns"),
    Bad("report", ("report", "{tmp}/sr"), ("runs.csv", "error"),
        sensing_results(**{"runs.csv": "scheme,num_attributes,inference,participants,seed,error,cost_km\n"
                                       "qcota,2,knn,8,0,lots,1.0\n"}), id="report:sensing runs.csv text in error"),
    Bad("report", ("report", "{tmp}/sr"), ("cycles.parquet",), sensing_results(**{"cycles.parquet": None}),
        id="report:sensing without cycles.parquet"),
    Bad("report", ("report", "{tmp}/sr"), ("cycles.parquet",), sensing_results(**{"cycles.parquet": b"PAR1 garbage"}),
        id="report:sensing cycles.parquet garbage"),
    Bad("report", ("report", "{tmp}/sr"), ("sweep.csv",),
        {"sr/experiment.json": json.dumps({"world": "sensing", "kind": "sweep"})}, id="report:sensing sweep without sweep.csv"),
]

# --- Piemonte CSV (the sensing world's real data): the file and the column are named --------------------------
PM = ("--data-dir", "{tmp}/pm")
for name, text, says in [
    ("empty", "", ("Piemonte_data_byday.csv", "empty")),
    ("not UTF-8", piemonte().replace("01/10/05", "01/10/05\udce9").encode("utf-8", "surrogateescape"),
     ("Piemonte_data_byday.csv", "UTF-8")),
    ("header only", piemonte(header_only=True), ("Piemonte_data_byday.csv", "no data rows")),
    ("text in WS", piemonte(edit={"WS": "windy"}), ("Piemonte_data_byday.csv", "column WS", "windy")),
    ("n/a in WS", piemonte(edit={"WS": "n/a"}), ("Piemonte_data_byday.csv", "column WS", "n/a")),
    ("n/a in PM10", piemonte(edit={"PM10": "n/a"}), ("Piemonte_data_byday.csv", "column PM10", "n/a")),
    ("dash in TEMP", piemonte(edit={"TEMP": "-"}), ("Piemonte_data_byday.csv", "column TEMP")),
    ("inf in EMI", piemonte(edit={"EMI": "inf"}), ("Piemonte_data_byday.csv", "column EMI")),
    ("NA in UTMX", piemonte(edit={"UTMX": "NA"}), ("Piemonte_data_byday.csv", "column UTMX")),
    ("text in Station.ID", piemonte(edit={"Station.ID": "Torino"}), ("Piemonte_data_byday.csv", "column Station.ID")),
    ("missing UTMY", piemonte(drop="UTMY"), ("Piemonte_data_byday.csv", "UTMY")),
    ("one cell", piemonte(stations=1), ("Piemonte_data_byday.csv", "station")),
]:
    files = {PIEMONTE_FILE: text}
    CATALOGUE.append(Bad("piemonte", sensing("train", *PM), says, files, id=f"piemonte:train:{name}"))
CATALOGUE += [
    Bad("piemonte", sensing("evaluate", *PM), ("Piemonte_data_byday.csv", "column WS"),
        {PIEMONTE_FILE: piemonte(edit={"WS": "n/a"})}, id="piemonte:evaluate:n/a in WS"),
    Bad("piemonte", sensing("check", *PM), ("Piemonte_data_byday.csv", "no data rows"),
        {PIEMONTE_FILE: piemonte(header_only=True)}, id="piemonte:check:header only"),
    Bad("piemonte", sensing("bench", *PM), ("Piemonte_data_byday.csv", "empty"), {PIEMONTE_FILE: ""},
        id="piemonte:bench:empty"),
]

# --- Chengdu data folder (the CSC world's real data) -------------------------------------------------------------
CD = ("--data-dir", "{tmp}/cd")
for name, files, says in [
    ("requests empty", chengdu(requests_text=""), ("requests.csv",)),
    ("requests not UTF-8", chengdu(requests_text=requests().replace("order_id", "ordr\udce9", 1)
                                   .encode("utf-8", "surrogateescape")), ("requests.csv", "UTF-8")),
    ("requests header only", chengdu(requests_text=requests(header_only=True)), ("requests.csv", "no data rows")),
    ("text in trip_distance", chengdu(requests_text=requests(edit={"trip_distance": "far"})),
     ("requests.csv", "column trip_distance", "far")),
    ("n/a in start_time", chengdu(requests_text=requests(edit={"start_time": "n/a"})),
     ("requests.csv", "column start_time")),
    ("missing origin_lat", chengdu(requests_text=requests(drop="origin_lat")), ("requests.csv", "origin_lat")),
    ("latitude out of range", chengdu(requests_text=requests(edit={"origin_lat": "130.5"})),
     ("requests.csv", "column origin_lat")),
    ("poi typei 99", chengdu(poi_text=poi(edit={"typei": "99"})), ("poi.csv", "column typei")),
    ("poi not UTF-8", chengdu(poi_text=poi().replace("B0FF", "B\udce9", 1).encode("utf-8", "surrogateescape")),
     ("poi.csv", "UTF-8")),
    ("no osm file", chengdu(osm=False), ("cd", ".osm")),
    ("osm not XML", {**chengdu(), "cd/centre.osm": "<osm><node"}, ("centre.osm", "OSM XML")),
]:
    CATALOGUE.append(Bad("chengdu", ("train", "greedy", "--world", "csc", "--config", TINY, "--results-dir",
                                     "{tmp}/results", *CD), says, files, id=f"chengdu:train:{name}"))
CATALOGUE += [
    Bad("chengdu", csc("evaluate", *CD), ("requests.csv", "column trip_distance"),
        chengdu(requests_text=requests(edit={"trip_distance": "n/a"})), id="chengdu:evaluate:n/a in trip_distance"),
    Bad("chengdu", csc("check", *CD), ("poi.csv", "no data rows"), chengdu(poi_text=",id,wgslng,wgslat,typei\n"),
        id="chengdu:check:poi header only"),
]

# --- list ---------------------------------------------------------------------------------------------------------
CATALOGUE += [
    Bad("list", ("list", "--world", "CSC"), ("--world", "unknown world 'CSC'")),
    Bad("list", ("list", "--world", "sensin"), ("--world", "did you mean 'sensing'")),
    Bad("list", ("list", "--world", ""), ("--world", "unknown world")),
    Bad("list", ("list", "extra"), ("unrecognized arguments",)),
]


# ---------------------------------------------------------------------------------------------- the harness

def make_files(root: Path, files: dict) -> None:
    for relative, content in files.items():
        path = root / relative
        if content is None:
            path.unlink(missing_ok=True)
        elif content is DIR:
            path.mkdir(parents=True, exist_ok=True)
        elif callable(content):
            content(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path below ``root`` with its kind, size and modification time."""
    seen = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(folder) / name
            stat = path.lstat()
            seen[str(path.relative_to(root))] = (path.is_dir(), stat.st_size, stat.st_mtime_ns)
    return seen


class RayStarted(AssertionError):
    pass


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """The row's folder as working directory and preprocessing cache; starting Ray fails the row."""
    import ray

    from rl_cs.data import cache
    from rl_cs.experiment import tune_runner

    def refuse(*args, **kwargs):
        raise RayStarted("bad input reached Ray: it must be refused before Ray starts")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cache, "DEFAULT_CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(tune_runner, "start_ray", refuse)
    monkeypatch.setattr(ray, "init", refuse)
    return tmp_path


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    return stopped.value.code


def expand(argv: tuple[str, ...], root: Path) -> list[str]:
    return [arg.replace("{tmp}", str(root)) for arg in argv]


def params():
    return [case.param() for case in CATALOGUE]


@pytest.mark.parametrize("case", params())
def test_bad_input_is_refused_cleanly(case: Bad, sandbox: Path, capsys):
    make_files(sandbox, case.files)
    before = snapshot(sandbox)
    code = run_cli(expand(case.argv, sandbox))
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}, expected 2\nstderr: {err[-2000:]}"
    assert "Traceback" not in err + out, err
    for text in case.says:
        assert text.replace("{tmp}", str(sandbox)) in err, f"{text!r} not in stderr: {err[-2000:]}"
    assert snapshot(sandbox) == before, "bad input wrote or changed files"


def test_catalogue_is_large_and_grouped():
    ids = [case.param().id for case in CATALOGUE]
    assert len(ids) == len(set(ids)), "two rows with one id"
    assert len(CATALOGUE) >= 120
    kinds = {case.kind for case in CATALOGUE}
    assert {"yaml", "set-training", "set-world", "set-sensing", "flags", "paths", "checkpoint", "report",
            "piemonte", "chengdu", "list"} <= kinds
    for world in ("csc", "sensing"):
        assert sum(world in " ".join(case.argv) for case in CATALOGUE) >= 20


# ---------------------------------------------------------------------------------------------- accepted inputs

GOOD = [
    pytest.param(csc("evaluate", *sets("training.lr=1e-3")), {}, id="--set training.lr=1e-3 (YAML 1.1 reads it as text)"),
    pytest.param(("report", "{tmp}/cr", "--out", "{tmp}/out"), csc_results(), id="the minimal CSC results folder"),
    pytest.param(("report", "{tmp}/sr", "--out", "{tmp}/out"), sensing_results(), id="the minimal sensing results folder"),
    pytest.param(("evaluate", "uns-ta", "--world", "sensing", *PM, *sets("world.num_participants=2")),
                 {PIEMONTE_FILE: piemonte()}, id="a Piemonte file with NA in PM10"),
    pytest.param(csc("evaluate", *CD, *sets("world.num_workers=5", "world.num_tasks=10")), chengdu(),
                 id="the small Chengdu folder"),
]


@pytest.mark.parametrize("argv, files", GOOD)
def test_good_input_is_accepted(argv, files, sandbox: Path, capsys):
    """The positive rows: inputs near the refused ones that must run (and the fixtures above are valid)."""
    make_files(sandbox, files)
    code = run_cli(expand(argv, sandbox))
    assert code == 0, capsys.readouterr().err[-3000:]
