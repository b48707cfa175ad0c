"""Fixtures for the nucleus tests: a writer of real recipe files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


class RecipeWriter:
    """Writes recipes (YAML, as gdk builds them) into `dir`, one file per component version."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)

    def document(
        self,
        name: str,
        version: str,
        *,
        deps: dict[str, str | tuple[str, str]] | None = None,
        defaults: dict[str, Any] | None = None,
        lifecycle: dict[str, Any] | None = None,
        artifacts: list[dict[str, Any]] | None = None,
        platform: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentVersion": version,
        }
        if defaults is not None:
            doc["ComponentConfiguration"] = {"DefaultConfiguration": defaults}
        if deps:
            doc["ComponentDependencies"] = {
                dep: (
                    {"VersionRequirement": spec[0], "DependencyType": spec[1]}
                    if isinstance(spec, tuple)
                    else {"VersionRequirement": spec}
                )
                for dep, spec in deps.items()
            }
        manifest: dict[str, Any] = {"Platform": platform or {"os": "linux"}}
        if lifecycle is not None:
            manifest["Lifecycle"] = lifecycle
        if artifacts is not None:
            manifest["Artifacts"] = artifacts
        doc["Manifests"] = [manifest]
        return doc

    def add(self, name: str, version: str, **kwargs: Any) -> Path:
        path = self.dir / f"{name}-{version}.yaml"
        path.write_text(yaml.safe_dump(self.document(name, version, **kwargs), sort_keys=False))
        return path


@pytest.fixture
def recipes(tmp_path: Path) -> RecipeWriter:
    return RecipeWriter(tmp_path / "recipes")


# --- lifecycle/process fixtures (appended by the lifecycle engineer) -----------------------------

import asyncio  # noqa: E402
import contextlib  # noqa: E402
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator  # noqa: E402

from ggsim.core import Core  # noqa: E402
from ggsim.nucleus.kernel import Kernel  # noqa: E402
from ggsim.nucleus.recipe import Recipe, load_recipe  # noqa: E402

from devsupport.roots import component_root  # noqa: E402


def _run_async(coro: Awaitable[Any], timeout: float = 60.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@pytest.fixture
def run_async() -> Callable[..., Any]:
    """`run_async(coro, timeout=60)`: run one test scenario on a fresh loop, with an overall timeout."""
    return _run_async


@pytest.fixture
def make_recipe(recipes: RecipeWriter) -> Callable[..., Recipe]:
    """`make_recipe(name, version="1.0.0", lifecycle=..., deps=..., defaults=...)` → a loaded Recipe."""

    def make(name: str, version: str = "1.0.0", **kwargs: Any) -> Recipe:
        return load_recipe(recipes.add(name, version, **kwargs))

    return make


@pytest.fixture
def kernel_root() -> Iterator[Path]:
    """A root the component user (ggc_user when the tests run as root) can reach; pytest's tmp_path is 0700."""
    with component_root() as root:
        yield root


@pytest.fixture
def running_kernel(kernel_root: Path) -> Callable[..., contextlib.AbstractAsyncContextManager[Kernel]]:
    """`async with running_kernel() as kernel:` the Kernel of a started Core with a short stop grace period."""

    @contextlib.asynccontextmanager
    async def start(**kwargs: Any) -> AsyncIterator[Kernel]:
        kwargs.setdefault("stop_grace", 0.5)
        core = Core(kernel_root, **kwargs)
        await core.start()
        try:
            yield core.kernel
        finally:
            await core.stop()

    return start


@pytest.fixture
def outbox(kernel_root: Path) -> Path:
    """A folder beside the root every component user may write to (the root's work/ is root's, 0755, as on a
    device): where test components leave what the test reads."""
    folder = kernel_root.parent / "out"
    folder.mkdir(mode=0o777, exist_ok=True)
    folder.chmod(0o777)
    return folder
