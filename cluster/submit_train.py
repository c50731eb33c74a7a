"""Entry script for `ray submit cluster/<file>.yaml cluster/submit_train.py -- <rl-cs arguments>`.

Runs the same `rl-cs` command line on the cluster's head node, joined to the running cluster
(RAY_ADDRESS=auto), so Tune spreads trials, env runners and GPU learners over its nodes.
"""

import os
import sys

from rl_cs.cli import main

if __name__ == "__main__":
    os.environ.setdefault("RAY_ADDRESS", "auto")
    main(sys.argv[1:])
