"""DyPS (paper 002, Wang et al., KDD 2024): dynamic parameter sharing. The pure torch maths live here
(config.py: Table 6 settings; vlstm.py: Eq. 5-12; cvae.py: Eq. 4; selector.py: Eq. 13 and the one-step
actor-critic of §3.3); rllib.py wires them into RLlib (M group policy modules, the per-episode agent ->
group assignment drawn at each episode's creation, Algorithm 1's update order, the ``dyps_config``
builder), actor.py evaluates a trained DyPS with the same per-episode draw, csc.py runs it on the CSC workers
(attention group policies, histories of each worker's own decisions; no paper has run this combination).

Notation. The paper's text has lost its single-letter symbols; these modules read them from the prose,
Figures 2-4, Algorithm 1 and the authors' public code (GitHub tsinghua-fib-lab/DyPS, algo/cvae.py and
algo/cvae_hrl.py) as: N agents n, M groups m, I_n agent n's identity, h_n its role embedding (VLSTM),
z_m group m's role (CVAE latent), s a state (an agent's observation), a an action, r a reward,
x_t = (s_t, r_t) the state-reward pair, W the group-selection matrix, P the N x M selection probabilities.
"""
