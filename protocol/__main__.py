"""``python -m protocol worker|wsgi ...``: run a worker host (2.7 and 3.x).

::

    python -m protocol worker --broker ipc:///srv/gw/run/broker.ipc --service calc mymod:TABLE
    python -m protocol wsgi --broker ipc:///srv/gw/run/broker.ipc --service web mymod:app
    python -m protocol worker --broker tcp://10.0.0.11:5555,tcp://10.0.0.12:5555 \
        --curve-server-key keys/broker.key --curve-secret keys/w2.key_secret \
        --service calc mymod:TABLE      # every broker of a multi-host estate (SPEC 2.15)

The same as ``python -m protocol.worker`` and ``python -m protocol.wsgi``, but
each host module is imported once, as itself: ``-m protocol.worker`` makes
runpy execute a second copy of a module that importing the package has
already loaded (and warn about it), so a handler that imports
``protocol.worker`` would see another ``current()`` than the one serving it.
"""
from __future__ import absolute_import, division, print_function

import sys

HOSTS = ("worker", "wsgi")


def main(argv=None):
    # type: (list) -> int
    """Dispatch to the host named by the first argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in HOSTS:
        sys.stderr.write("usage: python -m protocol {worker|wsgi} --broker ENDPOINT[,...] "
                         "--service NAME module:TARGET\n")
        return 2
    if args[0] == "worker":
        from protocol.worker import main as run
    else:
        from protocol.wsgi import main as run
    return run(args[1:])


if __name__ == "__main__":
    sys.exit(main())
