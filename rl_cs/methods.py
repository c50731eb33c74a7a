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
_DASC_SETTINGS = "policies.dasc_baselines:DASCBaselineSettings"
_GRID = ("lbf", "rware", "ridehailing", "vaccine")
"""The worlds of DyPS and its parameter-sharing baselines: the package gridworlds and the cell worlds (one agent
per grid cell; DyPS §4.1's resource allocation scenarios)."""
_DYPS_WORLDS = (*_GRID, "csc")
"""DyPS and its Table 3 ablations also run on CSC (policies.dyps.csc: attention group policies over the workers'
decisions; no paper has run this combination); DyPS+MAPPO does not."""
_DYPS = "policies.dyps.rllib:dyps_config"
_DYPS_SETTINGS = "policies.dyps.config:DyPSConfig"
_SHARING = "policies.sharing.ppo:sharing_config"

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
    Method("greedy", "Greedy (CAFE §5.1): each worker to its nearest feasible skill-matching task, uncoordinated",
           _CSC, needs=frozenset({"decision_view"}), heuristic="policies.heuristics:Greedy"),
    Method("greedy-coord", "Greedy-coord (ours, beyond the paper): nearest feasible task not yet covered by others",
           _CSC, needs=frozenset({"decision_view"}), heuristic="policies.heuristics:CoordinatedGreedy"),
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
    # --- the package gridworlds (DyPS, paper 002: LBF and RWARE); the CSC "random" reads CSC's action mask
    Method("uniform", "Uniform random: each agent one of its actions uniformly at random (the floor on LBF, RWARE)",
           ("lbf", "rware"), needs=frozenset({"decision_view"}), heuristic="policies.gridworld_random:UniformRandom"),
    # --- the DASC world (RMO, paper 001) and its non-learned baselines (policies/dasc_baselines.py); `greedy`
    # is CSC's planner (one heuristic per method name), so the DASC one is `greedy-dasc`
    Method("greedy-dasc", "GREEDY (RMO): each ready subtask, first come first served, to its nearest feasible free "
           "worker", ("dasc",), needs=frozenset({"decision_view"}), heuristic="policies.dasc_baselines:Greedy"),
    Method("km", "KM (RMO): every ready subtask recommended, Kuhn-Munkres on u(eta) with fixed eta, no learning",
           ("dasc",), needs=frozenset({"decision_view"}), heuristic="policies.dasc_baselines:KuhnMunkres"),
    Method("game", "GAME (Ni et al. ICDE'20, assumed): best-response dynamics of workers to a potential game's Nash "
           "equilibrium", ("dasc",), needs=frozenset({"decision_view"}), heuristic="policies.dasc_baselines:Game",
           settings=_DASC_SETTINGS, section="baselines"),
    Method("odta", "ODTA (Yao et al. TSC'22, assumed): randomized-threshold online assignment (GOMA's Ext-GRT)",
           ("dasc",), needs=frozenset({"decision_view"}), heuristic="policies.dasc_baselines:Odta",
           settings=_DASC_SETTINGS, section="baselines"),
    Method("odta-2stage", "ODTA two-stage (assumed, TGOA-like): greedy for the first half of arrivals, then "
           "Hungarian", ("dasc",), needs=frozenset({"decision_view"}), heuristic="policies.dasc_baselines:OdtaTwoStage",
           settings=_DASC_SETTINGS, section="baselines"),
    # --- RMO (paper 001) on the DASC world: the learned recommender and REC, its recommend-then-greedy baseline
    Method("rmo", "RMO: MAPPO subtask recommender (GATConv actor, two-GRU critic), dual-policy meta-gradients, "
           "meta-learned Kuhn-Munkres utility eta", ("dasc",), needs=frozenset({"agents_come_and_go", "global_state"}),
           build="rl_cs.experiment.dasc:rmo_config", settings="policies.rmo.config:RMOConfig", section="rmo",
           reward="sparse"),
    Method("rec", "REC (RMO's baseline): RMO's recommender trained and evaluated with greedy matching, no eta "
           "learning", ("dasc",), needs=frozenset({"agents_come_and_go", "global_state"}),
           build="rl_cs.experiment.dasc:rmo_config", build_options={"matching": "greedy"},
           settings="policies.rmo.config:RMOConfig", section="rmo", reward="sparse"),
    # --- DyPS (paper 002) and its parameter-sharing baselines on the package gridworlds and the cell worlds
    # (policies/dyps, policies/sharing): PPO on MLP actor-critic modules (masked where a cell world forbids an
    # action), Table 6 settings of each world in its ``training`` section
    Method("dyps", "DyPS: M group policies, per-episode groups from VLSTM agent roles x CVAE group roles (Eq. 13), "
           "one-step actor-critic selector, IPPO groups", _DYPS_WORLDS, build=_DYPS, settings=_DYPS_SETTINGS,
           section="dyps"),
    Method("dyps-mappo", "DyPS+MAPPO (Table 4): group policies with a centralised critic on [o_i, s] and the team "
           "reward", _GRID, build=_DYPS, build_options={"group_policy": "mappo"}, settings=_DYPS_SETTINGS,
           section="dyps"),
    Method("dyps-wo-cvae", "DyPS w/o CVAE (Table 3): groups by an MLP on [I_n, h_n]", _DYPS_WORLDS, build=_DYPS,
           build_options={"use_cvae": False}, settings=_DYPS_SETTINGS, section="dyps"),
    Method("dyps-wo-vlstm", "DyPS w/o VLSTM (Table 3): groups by [I_n]^T W z_m (agent ids and CVAE roles)",
           _DYPS_WORLDS, build=_DYPS, build_options={"use_vlstm": False}, settings=_DYPS_SETTINGS, section="dyps"),
    Method("dyps-wo-repr", "DyPS w/o Repr. (Table 3): groups by an MLP on the agent id only", _DYPS_WORLDS, build=_DYPS,
           build_options={"use_vlstm": False, "use_cvae": False}, settings=_DYPS_SETTINGS, section="dyps"),
    Method("nops", "NoPS: one policy module per agent, no parameter sharing (DyPS §4.2)", _GRID, build=_SHARING,
           build_options={"scheme": "nops"}),
    Method("ps", "PS: one policy module shared by every agent (DyPS §4.2)", _GRID, build=_SHARING,
           build_options={"scheme": "ps"}),
    Method("ps-id", "PS-id: one shared policy module, the agent's one-hot id appended to its observation", _GRID,
           build=_SHARING, build_options={"scheme": "ps-id"}),
    Method("psa", "PSA (Yang et al. 2022, assumed): per-agent actor and critic plus one critic shared by all", _GRID,
           build=_SHARING, build_options={"scheme": "psa"}),
    Method("seps", "SePS (Christianos et al. 2021): VAE agent-id embeddings on a pre-sampling phase, k-means into "
           "fixed groups", _GRID, build="policies.sharing.seps:seps_config",
           settings="policies.sharing.seps:SePSConfig", section="seps"),
    # --- the ride-hailing world (DyPS, paper 002): the rule-based baselines of its Table 7 (policies/
    # ridehailing_baselines.py; CSC's `greedy` holds that name) and our stay-home floor
    Method("rh-greedy", "Greedy (DyPS Table 7, assumed at cell level): idle drivers go where the highest fares wait",
           ("ridehailing",), needs=frozenset({"decision_view"}),
           heuristic="policies.ridehailing_baselines:RideHailingGreedy"),
    Method("rh-nearest", "Nearest (DyPS Table 7, assumed at cell level): serve the own cell, else the nearest "
           "neighbour with orders", ("ridehailing",), needs=frozenset({"decision_view"}),
           heuristic="policies.ridehailing_baselines:RideHailingNearest"),
    Method("rh-stay", "Stay (ours, the floor): no driver is ever dispatched out of its cell", ("ridehailing",),
           needs=frozenset({"decision_view"}), heuristic="policies.ridehailing_baselines:RideHailingStay"),
    # --- the vaccine world (DyPS's Medical scenario as a metapopulation SIR model): our heuristics
    Method("vaccine-none", "None: every cell holds its doses, nobody is vaccinated (infections averted = 0)",
           ("vaccine",), needs=frozenset({"decision_view"}), heuristic="policies.vaccine_baselines:VaccineNone"),
    Method("vaccine-local", "Local: every cell vaccinates its own residents with its own doses (by population)",
           ("vaccine",), needs=frozenset({"decision_view"}), heuristic="policies.vaccine_baselines:VaccineLocal"),
    Method("vaccine-proportional", "Proportional: doses to the reachable cell with the most unmet susceptible need "
           "(coordinated water-filling)", ("vaccine",), needs=frozenset({"decision_view"}),
           heuristic="policies.vaccine_baselines:VaccineProportional"),
    Method("vaccine-hotspot", "Hotspot (ours, stronger): doses to the reachable cell with unmet need and the highest "
           "prevalence", ("vaccine",), needs=frozenset({"decision_view"}),
           heuristic="policies.vaccine_baselines:VaccineHotspot"),
)
