"""Print every bundled contract's cases (ids and canonical params) as JSON, on 2.7 or 3.x.

    python -m tests.integration.contracttest.casegen_main SEED COUNT
"""
# ruff: noqa: UP010
from __future__ import absolute_import, division, print_function

import json
import sys

from protocol import casegen, contract


def main(argv):
    # type: (list) -> int
    seed, count = int(argv[1]), int(argv[2])
    out = {}
    for name in contract.available():
        spec = contract.load(name)
        out[name] = [[c.id, casegen.canonical(c.params, spec.schema_for(c.method))]
                     for c in casegen.cases(spec, seed, count)]
    sys.stdout.write(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
