"""Parameter-sharing baselines of DyPS (paper 002, §4.2) on the package gridworlds (lbf, rware), and the RLlib
plumbing DyPS shares with them: one MLP actor-critic per policy module (modules.py), the agent -> module
mappings (schemes.py), the PPO builder, callbacks and weights files (ppo.py), PSA's shared critic (psa.py),
SePS's pre-trained agent embeddings and k-means groups (seps.py), and the evaluation actor that acts with
several modules at once (actor.py).

* ``nops``: one module per agent (``agent_<i>``), no sharing (IPPO's separate parameters);
* ``ps``: one module (``shared``) for every agent;
* ``ps-id``: ``shared``, with the agent's one-hot id appended to its observation (the world's ``agent_id``);
* ``psa``: one actor and critic per agent plus a critic shared by all (psa.py states what was assumed);
* ``seps``: a pre-sampling phase on one module, then fixed k-means groups of VAE agent embeddings (seps.py);
* ``dyps`` (policies.dyps.rllib): M group modules and a per-episode learned assignment.
"""
