"""QCO-TA (Zhang et al.): SPE (priority.py: Eq. 3-5 per cell; representativeness.py: the set-based reading),
MPI (integration.py), NTS (selection.py), and the §5.3 baselines (schemes.py).
Policies see only ``envs.sensing.SensingObservation``; they never read files."""
