"""Create or refresh a GreenLens component's virtual environment, idempotently (the recipes' Install step).

Shipped inside every component's artifact ZIP (the build copies it in) and run by the recipe's Install step::

    python3 component_venv.py --requirements <artifact>/requirements.txt --venv {work:path}/venv

Install runs at every nucleus start (design §9), so this is a no-op when the venv already matches: the venv
holds a marker with the sha256 of the requirements file, of this script and of the interpreter that built it;
when all three match, nothing is done.

Otherwise the venv is (re)built with ``--system-site-packages`` from the ``python3`` that runs this script
(the first on PATH for the nucleus). When that interpreter is itself a virtual environment (ggsim started
from the project's .venv), its site-packages are added to the new venv with a ``.pth`` file too, because
``--system-site-packages`` only reaches the base interpreter's packages. pip then finds every pinned
requirement already installed and needs no network; on a device it installs what is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

MARKER = ".greenlens-venv.json"
PTH = "greenlens-parent-site.pth"


class VenvError(RuntimeError):
    """A step that failed; the text names the file or the command and what went wrong."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wanted_state(requirements: Path) -> dict[str, str]:
    """What the marker must hold for the venv to be up to date."""
    if not requirements.is_file():
        raise VenvError(f"{requirements}: requirements file not found")
    return {
        "requirements_sha256": _sha256(requirements),
        "installer_sha256": _sha256(Path(__file__)),
        "python": sys.executable,
        "python_version": sys.version.split()[0],
    }


def current_state(venv_dir: Path) -> dict[str, str] | None:
    marker = venv_dir / MARKER
    if not (venv_dir / "bin" / "python").exists() or not marker.is_file():
        return None
    try:
        state = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _parent_site_dirs() -> list[str]:
    """This interpreter's own site-packages when it is a venv (what --system-site-packages would miss)."""
    if sys.prefix == sys.base_prefix:
        return []
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


def _pip_available() -> bool:
    try:
        import pip  # noqa: F401
    except ImportError:
        return False
    return True


def build(venv_dir: Path, requirements: Path) -> None:
    if venv_dir.exists():
        shutil.rmtree(venv_dir)
    has_pip = _pip_available()
    # Without pip of its own when this interpreter has pip (faster; pip installs into it with --python).
    venv.EnvBuilder(system_site_packages=True, with_pip=not has_pip, symlinks=True).create(venv_dir)
    target = venv_dir / "bin" / "python"
    site = subprocess.run([str(target), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    parents = _parent_site_dirs()
    if parents:
        (Path(site) / PTH).write_text("".join(p + "\n" for p in parents))
    pip = [sys.executable, "-m", "pip", "--python", str(target)] if has_pip else [str(target), "-m", "pip"]
    command = [*pip, "install", "--disable-pip-version-check", "--no-input", "-r", str(requirements)]
    print("component_venv: " + " ".join(command), flush=True)
    result = subprocess.run(command)
    if result.returncode != 0:
        raise VenvError(f"pip install -r {requirements} exited {result.returncode} (see the lines above)")


def ensure(venv_dir: Path, requirements: Path) -> bool:
    """Make the venv match; True when something was (re)built, False when it was already up to date."""
    wanted = wanted_state(requirements)
    if current_state(venv_dir) == wanted:
        return False
    build(venv_dir, requirements)
    (venv_dir / MARKER).write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requirements", type=Path, required=True, help="the component's requirements.txt")
    ap.add_argument("--venv", type=Path, required=True, help="the venv folder (under the component's work dir)")
    args = ap.parse_args(argv)
    try:
        changed = ensure(args.venv.absolute(), args.requirements)
    except (VenvError, OSError, subprocess.CalledProcessError) as exc:
        print(f"component_venv: {exc}", file=sys.stderr)
        return 1
    print(f"component_venv: {args.venv} {'built' if changed else 'up to date'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
