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
        metrics=("revenue", "completion_rate", "travel_km", "mean_lateness_s", "invalid_actions"),
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
)
