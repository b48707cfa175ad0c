"""A subscriber that stamps each message as it arrives: what a consumer of greenlens/results sees.

    python -m bench.observer ROOT TOPIC

Connects to the ggsim running on ROOT with the CLI identity, through the same client and settings as the
components (greenlens_common.ipc: callbacks on the client's own thread), and prints one JSON line per
message, ``{"received_at": <time.time() in the callback>, "json": <message>}``: the time is taken before
anything is printed, so the pipe to the benchmark adds nothing to the measured latency.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> None:
    from ggsim.client import CLI_INFO
    from greenlens_common.ipc import Ipc

    root, topic = Path(argv[0]), argv[1]
    info = json.loads((root / CLI_INFO).read_text())
    ipc = Ipc.connect(socket_path=info["socket"], token=info["token"])
    lines: list[str] = []
    ready = threading.Condition()

    def on_message(message: dict[str, Any], _topic: str) -> None:
        stamp = time.time()
        with ready:  # printing happens on the main thread, off the IPC client's thread
            lines.append(json.dumps({"received_at": stamp, "json": message}))
            ready.notify()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ipc.subscribe_json(topic, on_message)
    while not stop.is_set():
        with ready:
            ready.wait(0.2)
            batch, lines[:] = lines[:], []
        if batch:
            sys.stdout.write("\n".join(batch) + "\n")
            sys.stdout.flush()
    ipc.close()


if __name__ == "__main__":
    main(sys.argv[1:])
