"""``bench.cpuprofile.top``: py-spy's folded stacks summed by function, each once per stack."""

from __future__ import annotations

from pathlib import Path

from bench.cpuprofile import top

ROOT = str(Path(__file__).resolve().parents[2])
FOLDED = f"""\
process 11:"python -m launch";main ({ROOT}/tests/launch.py:3);serve ({ROOT}/gateway/a.py:10);\
serve ({ROOT}/gateway/a.py:12) 6
process 11:"python -m launch";main ({ROOT}/tests/launch.py:3);\
read (/v/lib/python3.11/site-packages/uvicorn/b.py:7);sleep (/usr/lib/python3.11/asyncio/c.py:2) 3
process 11:"python -m launch";main ({ROOT}/tests/launch.py:3) 1
not a stack line
"""


def test_shares_by_function(tmp_path: Path) -> None:
    path = tmp_path / "front.txt"
    path.write_text(FOLDED)
    shares = {name: share for share, name in top(str(path), 10)}
    assert shares == {"main (tests/launch.py)": 1.0,
                      # two lines of one function in one stack: its samples once
                      "serve (gateway/a.py)": 0.6,
                      "read (uvicorn/b.py)": 0.3, "sleep (asyncio/c.py)": 0.3}


def test_empty_profile(tmp_path: Path) -> None:
    path = tmp_path / "none.txt"
    path.write_text("")
    assert top(str(path)) == []
