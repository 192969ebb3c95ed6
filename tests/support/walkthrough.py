"""The tagged blocks of the README's "Bring your own estate" walkthrough.

Each block the walkthrough test uses is preceded by ``<!-- estate: KIND [ARG] -->``:
``file PATH``, ``append gateway.toml``, ``run NAME`` or ``up``::

    for kind, arg, text in steps():     # in README order
        ...
"""

from __future__ import annotations

import os
import re

from tests.support.procs import REPO

BLOCK = re.compile(r"<!-- estate: (\w+)(?: (\S+))? -->\n```[a-z]*\n(.*?)```\n", re.S)
TAG = re.compile(r"^<!-- estate: ", re.M)


def section() -> str:
    """The walkthrough's text, from its heading to the next one."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    text = readme[readme.index("## Bring your own estate"):]
    return text[:text.index("\n## ", 1)]


def steps() -> list[tuple[str, str, str]]:
    """(kind, argument, text) of every tagged block, in order."""
    return [(kind, arg or "", text) for kind, arg, text in BLOCK.findall(section())]
