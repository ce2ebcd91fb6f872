"""Fail at once, naming ``PORT=``, when the demo's port is taken.

Used by ``make demo`` and ``make serve`` before anything else runs:
``python demo/check_port.py 8000 demo``. It binds the port the way uvicorn does
(``SO_REUSEADDR``, 127.0.0.1), so it fails exactly when the service would.
"""

from __future__ import annotations

import socket
import sys


def main(port: int, target: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as error:
            sys.exit(f"port {port} is already in use ({error.strerror}): stop what listens "
                     f"there, or pick another port: make {target} PORT={port + 1}")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "demo")
