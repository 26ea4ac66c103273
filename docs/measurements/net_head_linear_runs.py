"""The four original-protocol Net cells with the paper's linear head, on this machine (issue 24's measurement): the
profile's table1 runs with head="linear", into their own store. The profile (/tmp/lead/i24/i24_net.yaml in issue 24)
held only Net's four Table I cells, protocol original, seeds 1-10, 30 epochs, the paper's sizes."""

from siamese_lib.config import RunConfig
from siamese_lib.experiments import planning, profiles
from siamese_lib.pipeline.engine import ensure_runs

p = profiles.load_profile("/tmp/lead/i24/i24_net.yaml")
configs = [
    RunConfig(**{**c.to_dict(), "head": "linear"})
    for e in planning.expand(p, "", stages=("table1",))
    for c in e.configs()
]
records = ensure_runs(configs, "/tmp/lead/i24/runs/linear/store", device="cpu")
print(len(records))
