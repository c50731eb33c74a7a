"""The methods and baselines rl-cs knows, one declaration each (see rl_cs.registry.Method).

To add a method: write its module in policies/ (an RLModule/Learner/connector, or a heuristic planner), its
config dataclass if it has settings, its builder (learned methods: ``(config, env_config, seed) ->
AlgorithmConfig``), and one ``Method(...)`` here.
"""

from rl_cs.registry import Method

_PPO = "rl_cs.experiment.ppo:ppo_config"
_SHAPING = "rl_cs.experiment.shaping"
_CAFE_SETTINGS = "rl_cs.experiment.shaping_config:CAFESettings"
_QCOTA_SETTINGS = "policies.qcota.config:QcotaConfig"
_CSC = ("csc",)
_SENSING = ("sensing",)

METHODS = (
    # --- the CSC world (CAFE, paper 000, and its baselines)
    Method("ippo", "IPPO: PPO with one shared attention actor-critic on each worker's own (split) payment",
           _CSC, build=_PPO),
    Method("cafe", "CAFE: CMI reward redistribution (VAE), implicit bi-level phi updates, Newton fine-tuning",
           _CSC, needs=frozenset({"credit_facts"}), build=f"{_SHAPING}:cafe_config",
           build_options={"finetune": True}, settings=_CAFE_SETTINGS, section="cafe"),
    Method("ca-nofe", "CA-noFE: CAFE without the Newton fine-tuning of phi (CAFE's ablation)",
           _CSC, needs=frozenset({"credit_facts"}), build=f"{_SHAPING}:cafe_config",
           build_options={"finetune": False}, settings=_CAFE_SETTINGS, section="cafe"),
    Method("ir", "IR: PPO on the remaining working time of the chosen task (CAFE §5.1)",
           _CSC, build=_PPO, reward="ir"),
    Method("ices", "ICES: payment reward + CVAE Bayesian-surprise intrinsic bonus during training",
           _CSC, needs=frozenset({"global_state"}), build=f"{_SHAPING}:ices_config",
           settings="rl_cs.experiment.shaping_config:ICESSettings", section="ices"),
    Method("relara", "ReLara: payment reward + beta * a learned reward agent's proposal in [-1, 1]",
           _CSC, build=f"{_SHAPING}:relara_config",
           settings="rl_cs.experiment.shaping_config:ReLaraSettings", section="relara"),
    Method("greedy", "Greedy: nearest feasible skill-matching task not yet covered", _CSC,
           needs=frozenset({"decision_view"}), heuristic="policies.heuristics:Greedy"),
    Method("random", "Random: uniform over the allowed actions (the floor)", _CSC,
           needs=frozenset({"decision_view"}), heuristic="policies.heuristics:RandomPolicy"),
    Method("pau", "PAU: worker coalitions as an exact potential game (greedy, best response, annealing)", _CSC,
           needs=frozenset({"decision_view"}), heuristic="policies.pau:PAU"),
    # --- the sensing world (QCO-TA, paper 003, and the baselines of its §5.3)
    Method("qcota", "QCO-TA: temporal entropy + spatial MI priorities, attribute weights, value iteration",
           _SENSING, heuristic="policies.qcota.schemes:QcoTa", settings=_QCOTA_SETTINGS, section="qcota"),
    Method("oo-mta", "OO-MTA: the P cells of highest unified priority, travel cost ignored (§5.3.1)",
           _SENSING, heuristic="policies.qcota.schemes:OoMta", settings=_QCOTA_SETTINGS, section="qcota"),
    Method("gps-ta", "GPS-TA: the P / A highest-priority cells of each attribute (§5.3.2)",
           _SENSING, heuristic="policies.qcota.schemes:GpsTa", settings=_QCOTA_SETTINGS, section="qcota"),
    Method("ewa-ta", "EWA-TA: the P cells of highest equal-weight mean priority (§5.3.3)",
           _SENSING, heuristic="policies.qcota.schemes:EwaTa", settings=_QCOTA_SETTINGS, section="qcota"),
    Method("uns-ta", "UNS-TA: P cells sampled uniformly without replacement (§5.3.4)",
           _SENSING, heuristic="policies.qcota.schemes:UnsTa", settings=_QCOTA_SETTINGS, section="qcota"),
)
