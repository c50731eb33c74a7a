"""The worlds rl-cs knows, one declaration each (see rl_cs.registry.World for what each field means).

To add a world: write its env module (an RLlib MultiAgentEnv built from a plain-dict env_config) and its
typed config, a quick YAML in tune_configs/, and one ``World(...)`` here; then `rl-cs check <name>` runs the
conformance suite on it, and tests/test_world_conformance.py picks it up by itself.
"""

from rl_cs.registry import World

WORLDS = (
    World(
        name="csc",
        summary="collaborative spatial crowdsourcing: workers team up on skill-typed tasks on a road network",
        paper="CAFE (000) §3-4.1",
        env="envs.csc:CSCEnv",
        config="rl_cs.experiment.config:ExperimentConfig",
        commands="rl_cs.experiment.csc",
        report="rl_cs.report.csc:report",
        quick_config="tune_configs/csc_quick.yaml",
        metrics=("revenue", "completion_rate", "travel_km", "mean_lateness_s", "invalid_actions", "max_payable"),
        capabilities=frozenset({"decision_view", "credit_facts", "global_state", "action_mask"}),
        train_flags=frozenset({"resume", "no_compare"}),
        action_mask="envs.csc_observation:action_mask",
    ),
    World(
        name="sensing",
        summary="multi-attribute social sensing: participants choose cells each cycle, the rest is inferred",
        paper="QCO-TA (003) §3, §5",
        env="envs.sensing_rllib:SensingMultiAgentEnv",
        config="rl_cs.experiment.sensing_config:SensingExperimentConfig",
        commands="rl_cs.experiment.sensing",
        report="rl_cs.report.sensing:report",
        quick_config=None,
        metrics=("error", "cost_km"),
    ),
    World(
        name="lbf",
        summary="level-based foraging (PyPI lbforaging 2.0.0): agents with levels load food together on a grid",
        paper="DyPS (002) §4.1, Table 1: LBF (1) and (2)",
        env="envs.lbf:LBFEnv",
        config="rl_cs.experiment.gridworlds_config:LBFExperimentConfig",
        commands="rl_cs.experiment.gridworlds",
        report="rl_cs.report.gridworlds:report",
        quick_config="tune_configs/lbf_quick.yaml",
        metrics=("return", "food_collected", "food_spawned", "food_share", "steps"),
        capabilities=frozenset({"decision_view"}),
    ),
    World(
        name="rware",
        summary="multi-robot warehouse (PyPI rware 2.0.0): robots bring requested shelves to the goal cells",
        paper="DyPS (002) §4.1, Table 1: RWARE (1) and (2)",
        env="envs.rware:RWAREEnv",
        config="rl_cs.experiment.gridworlds_config:RWAREExperimentConfig",
        commands="rl_cs.experiment.gridworlds",
        report="rl_cs.report.gridworlds:report",
        quick_config="tune_configs/rware_quick.yaml",
        metrics=("return", "shelves_delivered", "steps"),
        capabilities=frozenset({"decision_view"}),
    ),
    World(
        name="dasc",
        summary="dependency-aware spatial crowdsourcing: DAG tasks, ready subtasks recommend, Kuhn-Munkres matches",
        paper="RMO (001): Problem Definition, MDP, Matching Utility (Eq. 1, 3, 9-13), Table 1",
        env="envs.dasc:DASCEnv",
        config="rl_cs.experiment.dasc_config:DASCExperimentConfig",
        commands="rl_cs.experiment.dasc",
        report="rl_cs.report.dasc:report",
        quick_config="tune_configs/dasc_quick.yaml",
        metrics=("revenue", "completion_rate", "subtask_match_rate", "travel_km", "mean_lateness_s"),
        capabilities=frozenset({"decision_view", "agents_come_and_go", "global_state"}),
    ),
)
