"""CAFE's mathematical core (paper 000, §4.3-4.6), independent of RLlib.

config.py        its settings, each defined once: PhiConfig, ImplicitGradConfig, CreditConfig (torch-free)
credit.py        CMI credit VAE and the redistributed reward (Eq. 1-5)
regulariser.py   return-equivalence regulariser L_Lambda (Eq. 6)
hypergradient.py implicit bi-level gradient of phi (Eq. 7-14)
finetune.py      Newton fine-tuning of phi and its schedule (Eq. 15-19, Algorithm 1)
finite.py        NaN/inf guard naming where a bad value appeared

Their RLlib wiring: credit_module.py (the VAE as an RLModule holding phi), connector.py (what CAFE writes
into the batch before GAE), learner.py (the phi updates).

Import from the submodules: this package re-exports nothing, so that loading an experiment YAML (which
imports policies.cafe.config) does not import torch.
"""
