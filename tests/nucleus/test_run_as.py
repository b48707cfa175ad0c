"""Steps run as the user the nucleus would use (spec components §3.3), and what a component may not read.

These run only as root (the CI runs everything as root): ggsim switches user only then, as the nucleus does.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ggsim.nucleus.recipe import Recipe
from ggsim.nucleus.run_as import RunAsError, parse_posix_user

from devsupport.roots import component_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ggsim switches user only when it runs as root")

T = 20.0
GGSIM = [sys.executable, "-m", "ggsim.cli"]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_steps_run_as_the_component_user_and_privileged_ones_as_root(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
    outbox: Path,
) -> None:
    recipe = make_recipe("who", lifecycle={
        "Install": "id -un > installed-by.txt; id -gn >> installed-by.txt; echo $HOME >> installed-by.txt",
        "Run": {"Script": f"id -un > {outbox}/run-by.txt", "RequiresPrivilege": True},
    })

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"who": recipe})
            await kernel.wait_for_state("who", "FINISHED", T)
            work = kernel.root / "work" / "who"
            user, group, home = lines(work / "installed-by.txt")
            assert (user, group, home) == ("ggc_user", "ggc_group", pwd.getpwnam("ggc_user").pw_dir)
            assert lines(outbox / "run-by.txt") == ["root"]
            # the work folder is the component user's, as the nucleus makes it
            assert pwd.getpwuid(work.stat().st_uid).pw_name == "ggc_user"

    run_async(scenario())


def test_a_forgotten_requires_privilege_fails_as_on_a_device(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
) -> None:
    # writing where only root may (here: the root's own work/ folder) needs RequiresPrivilege
    forgot = make_recipe("forgot", lifecycle={"Install": "touch ../forgot-was-here", "Run": "true"})
    asked = make_recipe("asked", lifecycle={
        "Install": {"Script": "touch ../asked-was-here", "RequiresPrivilege": "true"}, "Run": "true"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            await kernel.apply({"forgot": forgot, "asked": asked})
            states = await kernel.wait_healthy(["forgot", "asked"], T)
            assert states["forgot"] == "BROKEN" and states["asked"] in ("RUNNING", "FINISHED")
            assert not (kernel.root / "work" / "forgot-was-here").exists()
            assert (kernel.root / "work" / "asked-was-here").exists()
            assert "Permission denied" in (kernel.root / "logs" / "forgot.log").read_text()

    run_async(scenario())


def test_the_nucleus_runwithdefault_posixuser_chooses_the_user(
    running_kernel: Callable[..., Any], make_recipe: Callable[..., Recipe], run_async: Callable[..., Any],
) -> None:
    recipe = make_recipe("nobody.Runs", lifecycle={"Run": "id -un > by.txt"})

    async def scenario() -> None:
        async with running_kernel() as kernel:
            kernel.config.merge("aws.greengrass.Nucleus", {"runWithDefault": {"posixUser": "nobody"}})
            await kernel.apply({"nobody.Runs": recipe})
            await kernel.wait_for_state("nobody.Runs", "FINISHED", T)
            assert lines(kernel.root / "work" / "nobody.Runs" / "by.txt") == ["nobody"]

    run_async(scenario())


def test_a_component_cannot_read_the_cli_file_nor_another_users_secrets(tmp_path: Path) -> None:
    with component_root("root") as root:
        out = root.parent / "out"
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        info = root / "cli_ipc_info" / "ggsim.json"
        # a privileged component (root) and a curious one (ggc_user) that tries to get at the CLI's token
        # and at the privileged component's SVCUID, the two ways to act as someone else over IPC
        privileged = {"Run": {"Script": f"echo $$ > {out}/root.pid.tmp; mv {out}/root.pid.tmp {out}/root.pid; "
                                        "exec sleep 600", "RequiresPrivilege": True}}
        curious = {"Run": (
            f"until test -s {out}/root.pid; do sleep 0.05; done; "
            f"cat {info} > {out}/cli.txt 2> {out}/cli.err; echo $? > {out}/cli.code; "
            f"cat /proc/$(cat {out}/root.pid)/environ > {out}/env.txt 2> {out}/env.err; echo $? > {out}/env.code; "
            "exec sleep 600")}
        recipes = tmp_path / "recipes"
        recipes.mkdir()
        for name, lifecycle, deps in (("test.Privileged", privileged, None), ("test.Curious", curious,
                                                                              {"test.Privileged": "1.0.0"})):
            doc: dict[str, Any] = {"RecipeFormatVersion": "2020-01-25", "ComponentName": name,
                                   "ComponentVersion": "1.0.0",
                                   "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": lifecycle}]}
            if deps:
                doc["ComponentDependencies"] = {d: {"VersionRequirement": v} for d, v in deps.items()}
            (recipes / f"{name}-1.0.0.yaml").write_text(yaml.safe_dump(doc))
        log = open(root.parent / "ggsim-up.log", "a")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([*GGSIM, "--root", str(root), "up", "--recipeDir", str(recipes),
                                 "--merge", "test.Curious=1.0.0"], stderr=log, stdout=log)
        try:
            deadline = T * 3
            done = out / "env.code"
            start = time.monotonic()
            while not done.exists():  # the component writes it once it has tried both
                assert proc.poll() is None, (root.parent / "ggsim-up.log").read_text()
                assert time.monotonic() - start < deadline, (root.parent / "ggsim-up.log").read_text()
                time.sleep(0.05)
            assert oct(info.stat().st_mode & 0o777) == "0o600"
            assert lines(out / "cli.code") == ["1"] and "Permission denied" in (out / "cli.err").read_text()
            assert (out / "cli.txt").read_text() == ""
            assert lines(out / "env.code") == ["1"] and "Permission denied" in (out / "env.err").read_text()
            assert (out / "env.txt").read_text() == ""
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()


def test_ggsim_up_refuses_a_root_the_component_user_cannot_reach(tmp_path: Path) -> None:
    # a folder only its owner may enter (as pytest's own /tmp/pytest-of-root is, or /root)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    result = subprocess.run([*GGSIM, "--root", str(private / "root"), "up"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert f"cannot enter {private} (mode drwx------" in result.stderr and "ggc_user:ggc_group" in result.stderr


def test_ggsim_up_names_an_unknown_component_user(tmp_path: Path) -> None:
    with component_root() as root:
        result = subprocess.run([*GGSIM, "--root", str(root), "up", "--component-default-user", "nosuchuser:x"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "posixUser 'nosuchuser:x': no user 'nosuchuser'" in result.stderr


@pytest.mark.parametrize("text", ["", ":g", "u:", "u:g:h"])
def test_a_malformed_posix_user_is_refused(text: str) -> None:
    with pytest.raises(RunAsError, match="expected 'user' or 'user:group'"):
        parse_posix_user(text)
