"""How ggsim's command line reaches a running ggsim: Greengrass IPC with the CLI's identity.

greengrass-cli talks to the nucleus over IPC with a token the CLI component writes under
`<root>/cli_ipc_info`; ggsim does the same (`ggsim up` writes `cli_ipc_info/ggsim.json`), and this module
is the client side, on the real awsiotsdk client. Every call has a timeout (the SDK's V2 sync calls
have none).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

CLI_INFO = Path("cli_ipc_info") / "ggsim.json"


class NotRunningError(Exception):
    """No ggsim answers for that root."""


def write_cli_info(root: Path, socket_path: Path, token: str) -> Path:
    """Called by `ggsim up`: where the socket is and the CLI's token, readable by ggsim's user only.

    The folder is made 0700 and the file 0600 whatever they were before (a file left by an older run or
    created by hand keeps no wider mode), and a symbolic link in the file's place is refused — so that a
    component, which runs as another user when ggsim is root, can neither read the token nor redirect it.
    """
    path = root / CLI_INFO
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, stat.S_IRWXU)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, stat.S_IRUSR | stat.S_IWUSR)
    os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as out:
        json.dump({"socket": str(socket_path), "token": token, "pid": os.getpid()}, out)
    return path


def remove_cli_info(root: Path) -> None:
    (root / CLI_INFO).unlink(missing_ok=True)


class CliClient:
    """A connected IPC client with the CLI identity (`aws.greengrass.Cli`)."""

    def __init__(self, root: Path, timeout: float = 10.0) -> None:
        from awsiot.greengrasscoreipc import connect
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

        info_path = root / CLI_INFO
        try:
            info = json.loads(info_path.read_text())
        except FileNotFoundError:
            raise NotRunningError(f"ggsim is not running on root {root} (no {info_path}); start it with "
                                  f"`ggsim --root {root} up`") from None
        if not Path(info["socket"]).exists():
            raise NotRunningError(f"ggsim is not running on root {root}: socket {info['socket']} is gone")
        self.timeout = timeout
        try:
            connection = connect(ipc_socket=info["socket"], authtoken=info["token"], timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - awscrt raises its own error types
            raise NotRunningError(f"cannot reach ggsim on {info['socket']}: {exc}") from None
        self.ipc = GreengrassCoreIPCClientV2(client=connection)

    def call(self, operation: str, **kwargs: Any) -> Any:
        """`operation` is the SDK's snake-case name; waits at most `timeout` seconds.

        Subscriptions return (response, stream operation), as the SDK's sync calls do."""
        outcome = getattr(self.ipc, f"{operation}_async")(**kwargs)
        if isinstance(outcome, tuple):
            future, stream = outcome
            return future.result(self.timeout), stream
        return outcome.result(self.timeout)

    def create_deployment_document(self, document: dict[str, Any]) -> str:
        """Send a whole deployment document (a cloud CreateDeployment body, applied as-is)."""
        from awsiot.greengrasscoreipc import model

        class RawRequest(model.CreateLocalDeploymentRequest):
            def _to_payload(self) -> dict[str, Any]:
                return document

        operation = self.ipc.client.new_create_local_deployment()
        operation.activate(RawRequest()).result(self.timeout)
        return operation.get_response().result(self.timeout).deployment_id

    def close(self) -> None:
        self.ipc.close()

    def __enter__(self) -> CliClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
