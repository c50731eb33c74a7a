"""Entry script for `ray submit cluster/<file>.yaml cluster/submit_train.py -- <rl-cs arguments>`.

Runs the same `rl-cs` command line on the cluster's head node, joined to the running cluster
(RAY_ADDRESS=auto), so Tune spreads trials, env runners and GPU learners over its nodes. It runs from the
repository's copy on the head (the YAMLs mount it at ~/rl-cs and install it there), so relative paths such as
``--config tune_configs/cafe_table1.yaml`` mean what they mean in your checkout; give ``--results-dir`` as an
absolute path on storage every node shares (cluster/README.md).
"""

import os
import sys

from rl_cs.cli import main
from rl_cs.registry import REPOSITORY

if __name__ == "__main__":
    os.environ.setdefault("RAY_ADDRESS", "auto")
    os.chdir(REPOSITORY)
    main(sys.argv[1:])
