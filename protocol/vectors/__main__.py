"""``python -m protocol.vectors --write | --check | --report`` (see protocol.vectors)."""
from __future__ import absolute_import, division, print_function

import sys

from protocol.vectors import main

sys.exit(main())
