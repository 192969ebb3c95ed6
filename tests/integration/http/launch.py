"""Start the gateway from a JSON file of plain values (tests and benchmarks only).

::

    python -m tests.integration.http.launch config.json
    # {"http": {...GatewayHttpConfig.from_dict...}, "bind": "127.0.0.1:8080",
    #  "workers": 2, "threads": 8, "dev": false,
    #  "observability": {...gateway.metrics.config.ObservabilityConfig...}}   # optional
"""

from __future__ import annotations

import json
import sys

from gateway.assemble import observer
from gateway.http.config import GatewayHttpConfig
from gateway.http.server import FrontServer, listen_socket, serve_dev
from gateway.metrics.config import ObservabilityConfig


def main(argv: list[str]) -> int:
    """Read the JSON file named in argv[1] and serve until signalled."""
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    config = GatewayHttpConfig.from_dict(spec["http"])
    host, _, port = spec["bind"].rpartition(":")
    if spec.get("dev"):
        serve_dev(config, host, int(port))
        return 0
    sock = listen_socket((host.strip("[]"), int(port)))
    server = FrontServer(config, sock, workers=spec.get("workers", 1),
                         threads=spec.get("threads", 8))
    if spec.get("observability"):
        server.observer = observer(ObservabilityConfig(**spec["observability"]))
    return server.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
