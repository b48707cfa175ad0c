"""The Greengrass root layout (spec components §2.3) and the Unix socket path limit (spec IPC §1.1)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from ggsim.nucleus.layout import SUN_PATH_MAX, RootLayout, socket_path_fits


def test_paths_under_the_root() -> None:
    layout = RootLayout(Path("/gg"))
    assert layout.artifacts_path("a.B", "1.0.0") == Path("/gg/packages/artifacts/a.B/1.0.0")
    assert layout.decompressed_path("a.B", "1.0.0") == Path("/gg/packages/artifacts-unarchived/a.B/1.0.0")
    assert layout.work_path("a.B") == Path("/gg/work/a.B")
    assert layout.effective_config == Path("/gg/config/effectiveConfig.yaml")
    assert layout.logs_dir == Path("/gg/logs")
    assert layout.deployments_dir == Path("/gg/deployments")
    assert layout.bootstrapped_file == Path("/gg/deployments/bootstrapped.json")
    assert layout.socket_path == Path("/gg/ipc.socket")


def test_recipe_file_names_are_the_name_hash_and_the_version() -> None:
    key = base64.urlsafe_b64encode(hashlib.sha256(b"com.example.A").digest()).decode().rstrip("=")
    assert RootLayout(Path("/gg")).recipe_path("com.example.A", "1.2.3") == Path(
        f"/gg/packages/recipes/{key}@1.2.3.recipe.yaml")


def test_create_makes_every_folder(tmp_path: Path) -> None:
    layout = RootLayout(tmp_path / "gg")
    layout.create()
    layout.create()
    assert sorted(str(p.relative_to(layout.root)) for p in layout.root.rglob("*")) == [
        "config", "deployments", "logs", "packages", "packages/artifacts", "packages/artifacts-unarchived",
        "packages/recipes", "work"]


def test_the_socket_path_limit_counts_bytes() -> None:
    assert SUN_PATH_MAX == 108
    assert socket_path_fits("/" + "a" * 106)
    assert not socket_path_fits("/" + "a" * 107)
    assert not socket_path_fits("/" + "é" * 54), "54 characters but 109 bytes in UTF-8"


def test_components_get_a_relative_socket_path_when_the_absolute_one_is_too_long() -> None:
    assert RootLayout(Path("/greengrass/v2")).socket_path_for_component() == "/greengrass/v2/ipc.socket"
    deep = RootLayout(Path("/" + "r" * 100))
    assert deep.socket_path_for_component() == "../../ipc.socket"
    assert (deep.work_path("c") / "../../ipc.socket").resolve() == deep.socket_path.resolve()
