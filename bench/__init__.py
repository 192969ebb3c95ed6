"""Benchmarks, reported as ratios against a baseline measured in the same run.

``python -m bench`` runs every benchmark in :data:`BENCHES` and prints one
markdown table per benchmark; ``--smoke`` runs each for a moment, only to
prove it still works (CI does this, with no thresholds).
"""

BENCHES = ["codec", "rpc", "http", "migration", "arbiter", "stream", "interop", "faults",
           "brokerfaults", "observe", "cpu", "brokersplit"]
