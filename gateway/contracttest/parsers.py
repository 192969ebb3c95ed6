"""The ``contract`` and ``init`` parsers of the ``gateway`` command line.

:mod:`gateway.cli` builds its parser from these on every command, so this
module imports nothing heavy: ``gateway contract test`` names its body by
module and function (``local_command``), and the command line imports
:mod:`gateway.contracttest.cli` (with jsonschema, through
:mod:`protocol.contract`) only when that command runs.
"""

from __future__ import annotations

from typing import Any

from gateway.contracttest import scaffold


def add_parsers(sub: Any) -> None:
    """Add ``contract`` and ``init`` to the ``gateway`` parser."""
    scaffold.add_parser(sub)
    ct = sub.add_parser("contract", help="contract tests: the py2/py3 parity verdict")
    csub = ct.add_subparsers(dest="contract_command", required=True)
    t = csub.add_parser("test", help="run a contract's cases on py2 and py3 and compare")
    t.add_argument("folder", nargs="?", default=".")
    t.add_argument("--contract", action="append", default=[], metavar="PATH")
    t.add_argument("--py2", metavar="PYTHON", help="the Python 2 interpreter")
    t.add_argument("--py3", metavar="PYTHON", help="the Python 3 interpreter")
    t.add_argument("--py2-impl", action="append", default=[], metavar="[SERVICE=]module:ATTR")
    t.add_argument("--py3-impl", action="append", default=[], metavar="[SERVICE=]module:ATTR")
    how = t.add_mutually_exclusive_group()
    how.add_argument("--tox", action="store_true", help="run DIR/tox.ini's legs")
    how.add_argument("--ingest", action="store_true", help="only compare existing results")
    how.add_argument("--broker", metavar="ENDPOINT", help="call services on a running broker")
    t.add_argument("--tox-envs", default="py27,py3")
    t.add_argument("--py2-service", help="with --broker: the py2 service's name")
    t.add_argument("--py3-service", help="with --broker: the py3 service's name")
    t.add_argument("--results", metavar="DIR", help="results directory (DIR/.contract)")
    t.add_argument("--parity", metavar="PATH", help="parity table (DIR/build/parity.json)")
    t.add_argument("--seed", type=int)
    t.add_argument("--count", type=int, help="generated cases per method")
    t.add_argument("--ignore", action="append", default=[], metavar="POINTER",
                   help="a JSON pointer under the result to leave out of the comparison")
    t.add_argument("--timeout", type=float, default=600.0, help="seconds per leg")
    t.add_argument("--call-timeout", type=float, help="with --broker: seconds per call")
    t.add_argument("--json", action="store_true")
    t.set_defaults(local_command=("gateway.contracttest.cli", "cmd_contract"))
