"""Hyperparameter search: the ``search:`` section of every experiment YAML, its validation, and its Tune wiring.

A search samples values for dotted config fields (any field a method reads: ``world.*``, ``training.*``,
``model.*``, a method's own section such as ``cafe.*``) and runs one Tune trial per sampled configuration::

    search:
      space:
        training.lr: {loguniform: [1.0e-4, 3.0e-3]}
        training.clip_param: {uniform: [0.1, 0.3]}
        training.num_epochs: {randint: [1, 4]}
        cafe.phi.phi_lr: {choice: [1.0e-3, 1.0e-2]}
      searcher: optuna          # Optuna TPE (ray.tune.search.optuna.OptunaSearch); random: Tune's random sampling
      scheduler: asha           # none | asha (early stopping) | pbt (Population Based Training)
      num_samples: 8

A trial never maps fields onto RLlib keys: it receives the sampled dotted values, applies them to the stored
typed rl-cs config (rl_cs.config.with_override), validates it and builds its algorithm with the method's own
builder (``SearchPPO``; heuristics: rl_cs.experiment.rllib_commands.heuristic_trainable), so a sampled value
reaches exactly what the same value in the YAML would. Population Based Training restores a trial from
another's checkpoint under a perturbed config; ``SearchPPO`` rebuilds its algorithm config from it the same
way.

**Seeds.** Every trial of a search trains and samples with seed 0: configurations are compared on the same
seeded streams and initial weights, and the search's budget goes to configurations, not repeats.
``experiment.seeds`` must be 1 (``--seeds`` too); re-run the best configuration with ``--seeds N`` (a plain
`rl-cs train` without ``search:``) for its spread over seeds.

**Best.** The best trial is the best by the search metric at its last iteration among the trials that ran
every iteration (under ASHA, the trials it did not stop early; all trials if none did). Its held-out figures
are compared with the world's baseline as in a plain run; ``rl-cs report`` shows every trial's.

Everything here is checked before Ray starts (an InputError: exit 2, nothing written): unknown keys, a field
that does not exist, a bad distribution, a sampled bound the field's own validation refuses, a metric the
world never reports, and what the searcher or scheduler cannot take.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from rl_cs.config import to_dict, with_override
from rl_cs.errors import InputError, closest, require

SEARCHERS = ("optuna", "random")
SCHEDULERS = ("none", "asha", "pbt")
MODES = ("max", "min")
DISTRIBUTIONS = {
    "uniform": "{uniform: [low, high]}: a float drawn uniformly in [low, high]",
    "loguniform": "{loguniform: [low, high]}: a float whose log is uniform in [log low, log high] (0 < low)",
    "randint": "{randint: [low, high]}: an integer in low..high, both included",
    "choice": "{choice: [v1, v2, ...]}: one of the values",
    "grid": "{grid: [v1, v2, ...]}: every value in turn (each num_samples times; random searcher only)",
}
PBT_FIELDS = ("lr", "gamma", "lambda_", "clip_param", "entropy_coeff", "vf_loss_coeff", "num_epochs",
              "minibatch_size", "train_batch_size")
"""PPO hyper-parameters of a ``training`` section (``training.*``, or a method's, e.g. ``rmo.training.*``)
that Population Based Training may change in a running trial: none of them changes a network's shape or the
world, so a checkpoint of one configuration restores under another."""

SEARCH = "search"
"""Key of a trial's sampled values (dotted field -> value) in its Tune config (params.json)."""
RLCS = "rl_cs"
"""Key of what a trial rebuilds its typed config from: world, method, base config, data folder, seed."""
SEED = 0
"""The seed of every trial of a search (see the module docstring)."""
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class AshaSettings:
    """ASHA (ray.tune.schedulers.ASHAScheduler): stops the trials that rank low at each rung."""

    grace_period: int = 1
    """Iterations every trial runs before ASHA may stop it (its first rung)."""
    reduction_factor: float = 3.0
    """Rung spacing and cut: a trial continues past a rung only if it is in the top 1/reduction_factor."""

    def validate(self, where: str) -> None:
        require(self.grace_period >= 1, f"{where}.grace_period", f"must be >= 1, got {self.grace_period}")
        require(self.reduction_factor > 1, f"{where}.reduction_factor", f"must be > 1, got {self.reduction_factor}",
                "2 or 3 are usual")


@dataclass(frozen=True)
class PBTSettings:
    """Population Based Training (ray.tune.schedulers.PopulationBasedTraining) over PPO hyper-parameters."""

    perturbation_interval: int = 2
    """Iterations between exploit/explore steps: a trial in the bottom quantile then continues from a
    top-quantile trial's checkpoint with perturbed hyper-parameters."""
    quantile_fraction: float = 0.25
    """Share of the population copied (top) and replaced (bottom) at each step."""
    resample_probability: float = 0.25
    """Chance that a perturbed value is drawn afresh from its distribution instead of scaled by 0.8 or 1.2
    (a choice moves to a neighbouring value); values are kept within their distribution's bounds."""

    def validate(self, where: str) -> None:
        require(self.perturbation_interval >= 1, f"{where}.perturbation_interval",
                f"must be >= 1, got {self.perturbation_interval}")
        require(0 < self.quantile_fraction <= 0.5, f"{where}.quantile_fraction",
                f"must be in (0, 0.5], got {self.quantile_fraction}")
        require(0 <= self.resample_probability <= 1, f"{where}.resample_probability",
                f"must be in [0, 1], got {self.resample_probability}")


@dataclass(frozen=True)
class SearchSettings:
    """A hyperparameter search over config fields (rl_cs.experiment.search); empty ``space``: no search."""

    space: dict = field(default_factory=dict)
    """Dotted config field -> distribution: {uniform: [low, high]}, {loguniform: [low, high]}, {randint: [low,
    high]} (both included), {choice: [v1, v2, ...]} or {grid: [v1, v2, ...]} (every value; random searcher
    only). Any field a method reads: world.*, training.*, model.*, its own section (e.g. cafe.phi.phi_lr)."""
    searcher: str = "optuna"
    """optuna: Optuna's TPE (ray.tune.search.optuna.OptunaSearch), each suggestion informed by the finished
    trials; random: Tune's random sampling (BasicVariantGenerator), the fallback, and the one PBT takes."""
    scheduler: str = "none"
    """none: every trial runs experiment.iterations; asha: ASHA stops trials that rank low early (settings in
    ``asha``); pbt: Population Based Training perturbs training.* values of learned methods while they train
    (settings in ``pbt``; random searcher only)."""
    num_samples: int = 8
    """Configurations sampled (trials); with grid distributions, each grid point this many times."""
    metric: str = ""
    """What the search optimises, as the world reports it (e.g. revenue or env_runners/revenue on csc);
    empty: the world's first business metric (csc: revenue; sensing: error)."""
    mode: str = ""
    """max or min; empty: the world's choice (max for the RLlib worlds' first metric, min for sensing)."""
    max_concurrent_trials: int = 0
    """Trials running at once (0: experiment.max_concurrent_trials, else as many as the CPUs allow). Optuna
    suggests a configuration only when a slot is free (a ConcurrencyLimiter), so its later suggestions see the
    earlier results: on a small machine 2 is a good value."""
    seed: int = 0
    """Seed of the searcher's own draws (Optuna's sampler, random sampling, PBT's perturbations): the same
    seed suggests the same configurations. Trials themselves train with seed 0."""
    asha: AshaSettings = field(default_factory=AshaSettings)
    """ASHA's settings (scheduler: asha)."""
    pbt: PBTSettings = field(default_factory=PBTSettings)
    """PBT's settings (scheduler: pbt)."""

    @property
    def enabled(self) -> bool:
        return bool(self.space)

    def validate(self, where: str) -> None:
        """The section's own values (the space's fields are checked against the config by ``check``); with an
        empty space there is no search, and the other settings are not read (``--set 'search.space={}'`` turns
        a YAML's search off)."""
        if not self.space:
            return
        require(self.searcher in SEARCHERS, f"{where}.searcher", f"unknown searcher '{self.searcher}'",
                closest(str(self.searcher), SEARCHERS))
        require(self.scheduler in SCHEDULERS, f"{where}.scheduler", f"unknown scheduler '{self.scheduler}'",
                closest(str(self.scheduler), SCHEDULERS))
        require(self.num_samples >= 1, f"{where}.num_samples", f"must be >= 1, got {self.num_samples}",
                "the number of configurations to try")
        require(self.mode in ("", *MODES), f"{where}.mode", f"unknown mode '{self.mode}'",
                "max or min (empty: the world's choice)")
        require(self.max_concurrent_trials >= 0, f"{where}.max_concurrent_trials",
                f"must be >= 0, got {self.max_concurrent_trials}", "0: as many as the CPUs allow")
        require(self.seed >= 0, f"{where}.seed", f"must be >= 0, got {self.seed}")
        self.asha.validate(f"{where}.asha")
        self.pbt.validate(f"{where}.pbt")
        distributions = parse_space(self.space, f"{where}.space")
        if self.searcher == "optuna":
            grid = [key for key, d in distributions.items() if d.kind == "grid"]
            require(not grid, f"{where}.space.{grid[0] if grid else ''}", "Optuna cannot take a grid (it suggests "
                    "one configuration at a time)", "use {choice: [...]} with optuna, or searcher: random")
        if self.scheduler == "pbt":
            require(self.searcher == "random", f"{where}.searcher", "Tune runs PBT with random sampling only (it "
                    "refuses a searcher next to PopulationBasedTraining)", "set search.searcher: random")
            for key in distributions:
                parts = key.split(".")
                require(len(parts) >= 2 and parts[-2] == "training" and parts[-1] in PBT_FIELDS,
                        f"{where}.space.{key}", "PBT changes the values of a running trial, restoring another "
                        "trial's checkpoint: it can only take PPO hyper-parameters of a training section ("
                        f"training.{{{', '.join(PBT_FIELDS)}}})", "use scheduler: asha or none to search "
                        "this field, or leave it out of the space")


@dataclass(frozen=True)
class Distribution:
    """One parsed distribution of ``search.space``."""

    kind: str
    values: tuple

    def candidates(self) -> tuple:
        """The values checked against the field's own validation: both bounds, or every choice."""
        return self.values

    def domain(self):
        """The Tune search-space object."""
        from ray import tune

        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        if self.kind == "randint":
            return tune.randint(self.values[0], self.values[1] + 1)  # Tune's upper bound is excluded
        if self.kind == "choice":
            return tune.choice(list(self.values))
        return tune.grid_search(list(self.values))

    def mutation(self):
        """What PBT perturbs the value with: the domain (scaled by 0.8 / 1.2 or resampled), or the list of
        values (a neighbour, or resampled)."""
        return list(self.values) if self.kind in ("choice", "grid") else self.domain()

    def clamp(self, value):
        """A PBT-perturbed value kept within the distribution's bounds."""
        if self.kind in ("choice", "grid"):
            return value
        low, high = self.values
        value = min(max(value, low), high)
        return int(round(value)) if self.kind == "randint" else float(value)

    @property
    def log_scale(self) -> bool:
        return self.kind == "loguniform"


def parse_space(space: dict, where: str) -> dict[str, Distribution]:
    """``search.space`` as Distributions; a malformed entry is an InputError naming it and the fix."""
    parsed = {}
    for key, spec in space.items():
        here = f"{where}.{key}"
        shapes = "; ".join(DISTRIBUTIONS.values())
        if isinstance(spec, (list, tuple)):
            raise InputError(here, f"a list is not a distribution ({list(spec)!r})",
                             f"write {{choice: {list(spec)!r}}} (one of them) or {{grid: {list(spec)!r}}} (each)")
        require(isinstance(spec, dict) and len(spec) == 1, here, f"expected one distribution, got {spec!r}",
                f"one of: {shapes}")
        kind, values = next(iter(spec.items()))
        require(kind in DISTRIBUTIONS, here, f"unknown distribution '{kind}'", closest(str(kind), DISTRIBUTIONS))
        if kind in ("choice", "grid"):
            require(isinstance(values, (list, tuple)) and len(values) > 0, f"{here}.{kind}",
                    f"needs a non-empty list of values, got {values!r}", f"e.g. {{{kind}: [a, b]}}")
            parsed[key] = Distribution(kind, tuple(_number(v) for v in values))
            continue
        require(isinstance(values, (list, tuple)) and len(values) == 2, f"{here}.{kind}",
                f"needs [low, high], got {values!r}", DISTRIBUTIONS[kind])
        low, high = (_number(v) for v in values)
        for bound, value in (("low", low), ("high", high)):
            if kind == "randint":
                require(isinstance(value, int) and not isinstance(value, bool), f"{here}.{kind}",
                        f"{bound} must be an integer, got {value!r}", DISTRIBUTIONS[kind])
            else:
                require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                        f"{here}.{kind}", f"{bound} must be a finite number, got {value!r}", DISTRIBUTIONS[kind])
        require(low < high, f"{here}.{kind}", f"low must be < high, got [{low}, {high}]",
                "give the range as [low, high]; a single value needs no search (set it in the YAML)")
        if kind == "loguniform":
            require(low > 0, f"{here}.{kind}", f"bounds must be > 0 (a log scale), got [{low}, {high}]",
                    "use uniform for a range that includes 0 or negative values")
        parsed[key] = Distribution(kind, (low, high) if kind == "randint" else (float(low), float(high)))
    return parsed


def _number(value: Any) -> Any:
    """YAML 1.1 reads 1e-3 (no dot) as text: a number-looking text is a number here, as in the loader."""
    if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
        return float(value)
    return value


@dataclass(frozen=True)
class Target:
    """What a world's trials report, for the search's metric and mode."""

    metrics: tuple[str, ...]
    """Metric keys as Tune sees them (nested results flattened with '/'); the first is the default."""
    mode: str
    """The default mode (max or min) of the first metric."""
    prefix: str = ""
    """Prefix a bare metric name gets (the RLlib worlds: 'env_runners/')."""
    iterative: bool = True
    """Trials report once per iteration (ASHA and PBT need that); False: once per trial."""

    def key(self, name: str, where: str = "search.metric") -> str:
        """The Tune key of ``name`` ('' -> the default); an InputError for a metric the world never reports."""
        if not name:
            return self.metrics[0]
        if name in self.metrics:
            return name
        if self.prefix and f"{self.prefix}{name}" in self.metrics:
            return f"{self.prefix}{name}"
        bare = [m[len(self.prefix):] if self.prefix and m.startswith(self.prefix) else m for m in self.metrics]
        raise InputError(where, f"the world never reports a metric '{name}'", closest(str(name), bare))

    @classmethod
    def of_world(cls, world: str) -> "Target":
        """An RLlib world's: its business metrics as its trials report them, plus RLlib's episode return."""
        from rl_cs import registry

        names = (*registry.get_world(world).metrics, "episode_return_mean")
        return cls(tuple(f"env_runners/{name}" for name in names), "max", prefix="env_runners/")


def check(config, where: str, target: Target, fixed: tuple[str, ...]) -> None:
    """Validate ``config.search`` against the config it belongs to: the section itself, every space field
    exists and can be searched (not in a ``fixed`` section), each candidate value (bounds, choices) passes the
    field's own validation, the metric is one the world reports, the scheduler fits the world's trials."""
    settings = config.search
    here = _at(where, "search")
    settings.validate(here)
    if not settings.enabled:
        return
    target.key(settings.metric, f"{here}.metric")
    if not target.iterative:
        require(settings.scheduler == "none", f"{here}.scheduler", f"a trial of this world reports once (its "
                f"whole run), so {settings.scheduler} has no iterations to act on", "use scheduler: none")
    base = dataclasses.replace(config, search=SearchSettings())
    for key, distribution in parse_space(settings.space, f"{here}.space").items():
        spot = f"{here}.space.{key}"
        head = key.split(".")[0]
        require(head not in fixed, spot, f"the {head} section is not searchable (it is the same for every trial)",
                f"search fields of: {', '.join(f.name for f in dataclasses.fields(config) if f.name not in fixed)}")
        kind = _lookup(config, key, spot)
        if distribution.kind in ("uniform", "loguniform"):
            require(kind is not int, spot, f"{key} is an integer field; {distribution.kind} draws floats",
                    "use {randint: [low, high]} or {choice: [...]}")
        bounded = distribution.kind in ("uniform", "loguniform", "randint")
        for number, value in enumerate(distribution.candidates()):
            try:
                candidate = with_override(base, key, value, "")
                candidate.validate(where)
            except InputError as error:
                label = ("low", "high")[number] if bounded else "value"
                raise InputError(spot, f"the {label} {value!r} is refused by the field's own check "
                                 f"({error.problem})", error.fix or "keep the range within the values the field "
                                 "accepts") from None


def _lookup(config, dotted: str, where: str):
    """The type of the leaf field ``dotted`` of ``config``; an InputError with the nearest name for a field
    that does not exist, or names a whole section."""
    node, path = config, []
    for part in dotted.split("."):
        path.append(part)
        require(dataclasses.is_dataclass(node), where, f"'{'.'.join(path[:-1])}' is a value, it has no field "
                f"'{part}'", "name a field, e.g. training.lr")
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            prefix = "".join(f"{p}." for p in path[:-1])
            raise InputError(where, f"unknown field '{'.'.join(path)}'",
                             closest(f"{prefix}{part}", [f"{prefix}{name}" for name in names]))
        hint = typing.get_type_hints(type(node))[part]
        node = getattr(node, part)
    if dataclasses.is_dataclass(node):
        raise InputError(where, f"'{dotted}' is a section, not a field",
                         f"name one of its fields: {', '.join(f'{dotted}.{f.name}' for f in dataclasses.fields(node))}")
    return hint


def check_method(config, method, reads_section: bool | None = None, origin=None) -> None:
    """What the trained ``method`` can take (checked once the method is known, before Ray starts): PBT only
    for learned methods, fields only of sections the method reads (the world; a learned method's training and
    model; its own section where it reads it -- ``reads_section``, default: learned methods). ``origin``:
    search field (e.g. 'space.training.lr') -> where an error names it (the file or the --set it came from)."""
    settings = config.search
    if not settings.enabled:
        return
    origin = origin or (lambda name: f"search.{name}")
    if settings.scheduler == "pbt":
        require(method.learned, origin("scheduler"), f"'{method.name}' is a heuristic: PBT perturbs a training "
                "run, and a heuristic has none", "use scheduler: asha or none for a heuristic")
    names = {f.name for f in dataclasses.fields(config)}
    reads = {"world"} | ({"training", "model"} & names if method.learned else set())
    if method.section and (method.learned if reads_section is None else reads_section):
        reads.add(method.section)
    for key in settings.space:
        head = key.split(".")[0]
        require(head in reads, origin(f"space.{key}"), f"'{method.name}' does not read the {head} section, so the "
                "search would vary nothing it uses", f"{method.name} reads: "
                f"{', '.join(f'{name}.*' for name in sorted(reads))}")


def origin_of(config_path: str | None, overrides: list[str]):
    """search field -> where it was set: the last ``--set`` whose key covers it (``search``, ``search.space``,
    ``search.space.training.lr``), else the YAML file."""
    def origin(name: str) -> str:
        dotted = f"search.{name}"
        for item in reversed(list(overrides)):
            key = item.partition("=")[0].strip()
            if dotted == key or dotted.startswith(f"{key}."):
                return f"--set {item}: {dotted}"
        return f"{config_path}: {dotted}" if config_path else dotted

    return origin


def check_run(config, where: str) -> None:
    """Rules between the search and an RLlib experiment's other sections (config validation)."""
    settings = config.search
    if not settings.enabled:
        return
    require(not config.grid, _at(where, "grid"), "a search samples its configurations; a grid next to it would "
            "multiply every trial", "move the grid's fields into search.space as {grid: [...]} (random "
            "searcher) or {choice: [...]}")
    iterations = config.experiment.iterations
    if settings.scheduler == "asha":
        require(settings.asha.grace_period < iterations, _at(where, "search.asha.grace_period"),
                f"{settings.asha.grace_period} is not below experiment.iterations ({iterations}): ASHA would never "
                "stop a trial", "lower it, or use scheduler: none")
    if settings.scheduler == "pbt":
        require(settings.pbt.perturbation_interval < iterations, _at(where, "search.pbt.perturbation_interval"),
                f"{settings.pbt.perturbation_interval} is not below experiment.iterations ({iterations}): PBT "
                "would never perturb", "lower it, or raise experiment.iterations")


def _at(where: str, field_name: str) -> str:
    """``file.yaml: search.x`` (or just the field where no file or --set is named)."""
    return f"{where}: {field_name}" if where else field_name


# --- trials -----------------------------------------------------------------------------------------------
def apply(config, values: dict, where: str):
    """``config`` with the sampled dotted ``values`` set through the loader (types checked as from YAML)."""
    for key, value in values.items():
        config = with_override(config, key, _plain(value), where)
    return config


def _plain(value: Any) -> Any:
    """Tune and Optuna may hand back numpy scalars; the loader checks Python types."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def is_trial(params: Any) -> bool:
    """Whether a Tune trial config (params.json) is a search trial's."""
    return isinstance(params, dict) and isinstance(params.get(SEARCH), dict) and RLCS in params


def trial_config(cls: type, params: dict, where: str):
    """The typed config a search trial runs: its stored base config with its sampled values, validated."""
    from rl_cs.config import from_dict

    base = from_dict(cls, params[RLCS]["config"], f"{where}: {RLCS}.config")
    config = apply(base, params[SEARCH], f"{where}: {SEARCH}")
    config = dataclasses.replace(config, search=SearchSettings())
    config.validate(where)
    return config


def sampled(params: dict) -> dict:
    """A trial's sampled values (dotted field -> plain value)."""
    return {key: _plain(value) for key, value in (params.get(SEARCH) or {}).items()}


def param_space(settings: SearchSettings, constants: dict) -> dict:
    """Tune's param_space: ``constants`` (what the trainable needs besides the sampled values) and the
    distributions under SEARCH."""
    space = {key: d.domain() for key, d in parse_space(settings.space, "search.space").items()}
    return {**constants, SEARCH: space}


def resolved(settings: SearchSettings, target: Target) -> tuple[str, str]:
    """The metric key and mode the search runs with."""
    return target.key(settings.metric), settings.mode or target.mode


def tune_config(settings: SearchSettings, target: Target, iterations: int, max_concurrent: int):
    """TuneConfig of a search: searcher (Optuna TPE behind a ConcurrencyLimiter, or random sampling),
    scheduler (ASHA, PBT or none), num_samples, metric, mode and concurrency."""
    from ray.tune import TuneConfig
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    metric, mode = resolved(settings, target)
    concurrent = settings.max_concurrent_trials or max_concurrent
    if settings.searcher == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(seed=settings.seed)
        if concurrent:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=concurrent)
    else:
        searcher = BasicVariantGenerator(random_state=settings.seed, max_concurrent=concurrent)
    scheduler = None
    if settings.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=iterations,
                                  grace_period=settings.asha.grace_period,
                                  reduction_factor=settings.asha.reduction_factor)
    elif settings.scheduler == "pbt":
        import random

        from ray.tune.schedulers import PopulationBasedTraining

        random.seed(settings.seed)  # PBT draws its perturbations from Python's global generator
        distributions = parse_space(settings.space, "search.space")
        scheduler = PopulationBasedTraining(
            time_attr="training_iteration", perturbation_interval=settings.pbt.perturbation_interval,
            quantile_fraction=settings.pbt.quantile_fraction,
            resample_probability=settings.pbt.resample_probability,
            hyperparam_mutations={SEARCH: {key: d.mutation() for key, d in distributions.items()}},
            custom_explore_fn=ClampToSpace(settings.space))
    return TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=settings.num_samples, metric=metric,
                      mode=mode, trial_dirname_creator=trial_dirname)  # concurrency: the searcher's own limit


class ClampToSpace:
    """PBT's custom explore step: perturbed values stay within their distribution's bounds (scaling by 1.2
    could leave them, and the trial would then refuse its config)."""

    def __init__(self, space: dict):
        self.space = space

    def __call__(self, config: dict) -> dict:
        distributions = parse_space(self.space, "search.space")
        config[SEARCH] = {key: distributions[key].clamp(value) if key in distributions else value
                          for key, value in config[SEARCH].items()}
        return config


def trial_dirname(trial) -> str:
    """Short trial folder names (Tune's default spells out the whole config, far too long here)."""
    return f"{trial.trainable_name}_{trial.trial_id}"


def summary(settings: SearchSettings, target: Target) -> dict:
    """What experiment.json records of a search."""
    metric, mode = resolved(settings, target)
    space = {key: {d.kind: list(d.values)} for key, d in parse_space(settings.space, "search.space").items()}
    return {"space": space, "searcher": settings.searcher, "scheduler": settings.scheduler,
            "num_samples": settings.num_samples, "metric": metric, "mode": mode, "seed": settings.seed,
            "trial_seed": SEED, **({"asha": to_dict(settings.asha)} if settings.scheduler == "asha" else {}),
            **({"pbt": to_dict(settings.pbt)} if settings.scheduler == "pbt" else {})}


def ranked(frame, metric: str, mode: str):
    """Trials best first by ``metric``; those that ran every iteration come before those stopped early
    (a trial ASHA stopped is compared at an earlier iteration than the others)."""
    early = frame["stopped_early"].astype(bool) if "stopped_early" in frame else False
    order = frame.assign(_early=early)
    order = order.sort_values(["_early", metric], ascending=[True, mode == "min"], na_position="last")
    return order.drop(columns="_early").reset_index(drop=True)


# --- the learned trainable --------------------------------------------------------------------------------
def algorithm_config(params: dict):
    """The RLlib AlgorithmConfig of a learned search trial, built as a plain run builds it: the typed config
    with the sampled values, on the method's train world, the world's env_config, the method's builder."""
    from rl_cs.experiment.rllib_commands import search_trial

    world, method, config = search_trial(params)
    env_config = world.env_config(config.world, params[RLCS]["data_dir"])
    return method.build_algorithm(config, env_config, params[RLCS]["seed"])


def _search_ppo() -> type:
    from ray.rllib.algorithms.ppo import PPO

    class SearchPPO(PPO):
        """RLlib's PPO whose AlgorithmConfig is built from a search trial's sampled rl-cs fields (see
        ``algorithm_config``); every result also carries the values the trial runs with (``searched``). A
        restored checkpoint (PBT's exploit: another trial's state under this trial's perturbed config) takes
        the config's learning rate at once, not after one iteration on the checkpoint's."""

        def __init__(self, config=None, env=None, **kwargs):
            self.searched = sampled(config) if is_trial(config) else {}
            if is_trial(config):
                config = algorithm_config(config)
            super().__init__(config=config, env=env, **kwargs)

        @classmethod
        def default_resource_request(cls, config):
            if is_trial(config):
                config = algorithm_config(config).to_dict()
            return super().default_resource_request(config)

        def step(self):
            result = super().step()
            result["searched"] = dict(self.searched)
            return result

        def get_auto_filled_metrics(self, *args, **kwargs):
            """Each result's ``config``: the trial's sampled values, not the whole AlgorithmConfig (which Tune
            would print in full as the 'current best trial' and store in every result.json line)."""
            metrics = super().get_auto_filled_metrics(*args, **kwargs)
            if "config" in metrics:
                metrics["config"] = {SEARCH: dict(self.searched)}
            return metrics

        def load_checkpoint(self, checkpoint_dir):
            super().load_checkpoint(checkpoint_dir)
            self.learner_group.foreach_learner(_learning_rates_from_config)

    SearchPPO.__module__, SearchPPO.__qualname__ = __name__, "SearchPPO"
    return SearchPPO


def _learning_rates_from_config(learner, **kwargs) -> None:
    """Set each optimizer's learning rate to its (config-built) schedule's value: a restored optimizer state
    carries the checkpoint's."""
    for optimizer in learner._named_optimizers.values():
        schedule = learner._optimizer_lr_schedules.get(optimizer)
        if schedule is not None:
            learner._set_optimizer_lr(optimizer, float(schedule.get_current_value()))


_CLASSES: dict[str, type] = {}


def __getattr__(name: str):
    """``SearchPPO`` is built on first use, so that loading a config does not import RLlib; it is then a
    module attribute like any class (Ray pickles it by reference)."""
    if name == "SearchPPO":
        if name not in _CLASSES:
            _CLASSES[name] = _search_ppo()
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
