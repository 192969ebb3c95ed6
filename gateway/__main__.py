"""``python -m gateway``: the same as the ``gateway`` console script (see gateway.cli)."""

import sys

from gateway.cli import main

sys.exit(main())
