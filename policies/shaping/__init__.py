"""Learned reward rewriting for PPO on RLlib's new API stack, shared by CAFE, ICES and ReLara.

facts.py      per-step numeric columns (neighbour actions, global state, realised revenue) from episode infos
connector.py  the RewardShaper API and the learner connector piece that rewrites rewards before GAE
learner.py    the PPO learner that inserts that piece and trains the shaper module next to the policy
"""
