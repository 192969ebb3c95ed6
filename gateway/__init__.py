"""The gateway: HTTP front, ZeroMQ broker, arbiter and migration tooling (Python 3 only).

Services never import this package; they speak the wire protocol defined in
``protocol/SPEC.md`` through the ``protocol`` library.
"""

__version__ = "0.1.0"
