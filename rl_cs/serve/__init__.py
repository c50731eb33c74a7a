"""`rl-cs serve`: a trained CSC policy or a heuristic as an online assignment service (Ray Serve, loopback).

- ``rl_cs.serve.snapshot``: the JSON request schema, its validation (pure Python, no Ray) and the export of
  a running world's decision step as such a request;
- ``rl_cs.serve.assigner``: the CSC world set to a posted snapshot (the world's own feasibility rules,
  action masks and observations) and the policy acting on it;
- ``rl_cs.serve.service``: the Ray Serve deployment (HTTP on 127.0.0.1) and the `serve` command.
"""
