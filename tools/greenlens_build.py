"""The one build of GreenLens's Greengrass components: recipes/<Name>.yaml + components/ → recipes and artifacts.

    python tools/greenlens_build.py [all | <ComponentName> | <component folder>] [--out DIR]
    python3 ../../tools/greenlens_build.py <ComponentName> --gdk      # GDK's `custom` build, from a GDK project

For each component it writes, as `gdk component build` lays them out (spec components §6.2)::

    <out>/recipes/<Name>-<version>.yaml
    <out>/artifacts/<Name>/<version>/<Name>.zip

- every recipe it writes is validated by ggsim's recipe parser (simulator/ggsim/nucleus/recipe.py, taken from
  this checkout): the rules for names, versions, lifecycles, platforms and artifacts live there only;
- name, version and publisher come from the component's gdk-config.json (its `version` and `author`);
  greenlens.Model gets one version per entry of components/model/versions.yaml, each with its bundle;
- the recipe is recipes/<Name>.yaml with ComponentName/ComponentVersion/ComponentPublisher filled in and
  every `s3://` artifact URI whose file the build makes rewritten to
  `s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/<file>` (what GDK writes; `gdk component publish`
  replaces it with the real bucket and key);
- a code component's ZIP holds its Python package(s), greenlens_common, requirements.txt (its own pins
  merged with greenlens_common's) and component_venv.py (the Install step); greenlens.Model's ZIP holds
  the bundle's files (a version versions.yaml marks `deliberately_broken` only with --include-broken, and
  never with --gdk, so `gdk component publish` cannot publish it). ZIP entries are sorted, with fixed timestamps and permissions: two builds of the
  same sources give byte-identical archives (same sha256).

`all` (the default) builds every component into build/deploy/ — the aggregate layout that
`ggsim deployment create -r build/deploy/recipes -a build/deploy/artifacts` and `greengrass-cli` take.
`--gdk` is for a GDK project's `custom_build_command`: run from the folder of a gdk-config.json, it builds
that project's component at that version into ./greengrass-build/ and also writes the recipe under the
file name `gdk component publish` reads (GDK's project recipe, recipe.yaml, resolved).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SIMULATOR = REPO / "simulator"
S3_PLACEHOLDER = "s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
MODEL_COMPONENT = "greenlens.Model"
COMMON_PACKAGE = "greenlens_common"
VENV_INSTALLER = "component_venv.py"
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class BuildError(Exception):
    """A problem in the sources; the text names the file, the key or value, and what is expected."""


#: The distribution to install for each module ggsim's recipe parser imports beyond the standard library.
_DISTRIBUTIONS = {"yaml": "PyYAML", "semantic_version": "semantic_version"}


@functools.cache
def recipe_rules() -> ModuleType:
    """ggsim's recipe module from this checkout (simulator/ beside tools/), whatever python3 runs the build:
    GDK runs it with the user's python3, where ggsim is not installed."""
    if str(SIMULATOR) not in sys.path:
        sys.path.insert(0, str(SIMULATOR))
    try:
        from ggsim.nucleus import recipe
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        raise BuildError(f"{SIMULATOR / 'ggsim' / 'nucleus' / 'recipe.py'} (ggsim's recipe parser, which validates "
                         f"every recipe the build writes) needs the Python package {missing!r}, which "
                         f"{sys.executable} lacks: pip install {_DISTRIBUTIONS.get(missing, missing)}") from None
    return recipe


def _check_version(version: Any, where: str) -> str:
    problem = recipe_rules().version_problem(version)
    if problem is not None:
        raise BuildError(f"{where}: {problem}")
    return version


def validate_recipe(doc: dict[str, Any], source: str) -> Any:
    """The recipe as ggsim's parser reads it (a RecipeDocument, every manifest validated); `BuildError`
    naming the file, the key path and the reason otherwise."""
    rules = recipe_rules()
    try:
        return rules.parse_recipe_document(doc, source)
    except rules.RecipeError as exc:
        raise BuildError(str(exc)) from None


@dataclass(frozen=True)
class Project:
    """One GDK project: a gdk-config.json naming exactly one component."""

    name: str
    version: str
    author: str
    folder: Path  # the folder of its gdk-config.json


@dataclass(frozen=True)
class Built:
    name: str
    version: str
    recipe: Path
    artifacts: tuple[Path, ...]


# ------------------------------------------------------------------------------------------------ sources


def load_project(config_path: Path) -> Project:
    try:
        doc = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise BuildError(f"{config_path}: cannot be read as JSON: {exc}") from None
    components = doc.get("component") if isinstance(doc, dict) else None
    if not isinstance(components, dict) or len(components) != 1:
        raise BuildError(f"{config_path}: component: expected an object with exactly one component name")
    (name, fields), = components.items()
    if not isinstance(fields, dict):
        raise BuildError(f"{config_path}: component.{name}: expected an object")
    version = _check_version(fields.get("version"), f"{config_path}: component.{name}.version")
    author = fields.get("author")
    if not isinstance(author, str) or not author:
        raise BuildError(f"{config_path}: component.{name}.author: {author!r}: expected a non-empty string")
    return Project(name, version, author, config_path.parent)


def load_projects(repo: Path = REPO) -> dict[str, Project]:
    """Every GDK project of the repository (the top-level one and one per components/<part>/), by name."""
    projects: dict[str, Project] = {}
    for path in [repo / "gdk-config.json", *sorted((repo / "components").glob("*/gdk-config.json"))]:
        if not path.is_file():
            continue
        project = load_project(path)
        if project.name in projects:
            raise BuildError(f"{path}: component {project.name} is already the project of "
                             f"{projects[project.name].folder / 'gdk-config.json'}")
        projects[project.name] = project
    return projects


def load_source_recipe(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BuildError(f"{path}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise BuildError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise BuildError(f"{path}: expected a recipe (a mapping of keys), found {type(doc).__name__}")
    key = _key(doc, "RecipeFormatVersion")
    # GDK reads recipes with PyYAML, which makes an unquoted 2020-01-25 a date that its schema refuses
    # (ggsim and the nucleus read it as text, so only the source can show this).
    if key is not None and isinstance(doc[key], datetime.date):
        raise BuildError(f"{path}: RecipeFormatVersion: {doc[key]!r}: expected the string \"2020-01-25\" "
                         "(quote it in YAML, or it becomes a date)")
    # A plain tree: YAML anchors/aliases in the source become independent values in the built recipe.
    return json.loads(json.dumps(doc))


def broken_model_versions(repo: Path = REPO) -> set[str]:
    """greenlens.Model versions versions.yaml marks `deliberately_broken` (built only with --include-broken)."""
    doc = yaml.safe_load((repo / "components" / "model" / "versions.yaml").read_text())
    return {str(v) for v, entry in (doc.get("versions") or {}).items()
            if isinstance(entry, dict) and entry.get("deliberately_broken")}


def model_versions(repo: Path = REPO) -> dict[str, Path]:
    """greenlens.Model versions → bundle folder, from components/model/versions.yaml."""
    path = repo / "components" / "model" / "versions.yaml"
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BuildError(f"{path}: cannot be read: {exc}") from None
    versions = doc.get("versions") if isinstance(doc, dict) else None
    if not isinstance(versions, dict) or not versions:
        raise BuildError(f"{path}: versions: expected a mapping of component versions to {{bundle: <folder>}}")
    result: dict[str, Path] = {}
    for version, entry in versions.items():
        _check_version(version, f"{path}: versions: key {version!r}")
        bundle = entry.get("bundle") if isinstance(entry, dict) else None
        if not isinstance(bundle, str) or not bundle:
            raise BuildError(f"{path}: versions.{version}.bundle: {bundle!r}: expected a folder name under bundles/")
        folder = path.parent / "bundles" / bundle
        manifest = folder / "model.json"
        if not manifest.is_file():
            raise BuildError(f"{path}: versions.{version}.bundle: {bundle!r}: {manifest} not found "
                             "(run `make model`)")
        stated = json.loads(manifest.read_text()).get("version")
        if stated is not None and stated != version:
            raise BuildError(f"{manifest}: version: {stated!r}: expected {version!r} as versions.yaml states "
                             "(rebuild the bundle with `make model`)")
        result[version] = folder
    return result


# ------------------------------------------------------------------------------------------------ recipes


def _key(mapping: dict[str, Any], wanted: str) -> str | None:
    """The key of `mapping` that is `wanted` case-insensitively (recipe keys are case-insensitive)."""
    for key in mapping:
        if isinstance(key, str) and key.lower() == wanted.lower():
            return key
    return None


def _set(mapping: dict[str, Any], wanted: str, value: Any) -> None:
    mapping[_key(mapping, wanted) or wanted] = value


def fill_recipe(doc: dict[str, Any], *, name: str, version: str, author: str, source: Path,
                artifact_files: Iterable[str], description_suffix: str = "") -> dict[str, Any]:
    """The built recipe: GDK's build transform (name, version, publisher, S3 URIs of the files it built)."""
    built = json.loads(json.dumps(doc))
    _set(built, "ComponentName", name)
    _set(built, "ComponentVersion", version)
    _set(built, "ComponentPublisher", author)
    if description_suffix:
        key = _key(built, "ComponentDescription") or "ComponentDescription"
        built[key] = f"{built.get(key, '')} {description_suffix}".strip()
    files = set(artifact_files)
    used: set[str] = set()
    document = validate_recipe(built, str(source))
    manifests = built[_key(built, "Manifests")]
    for manifest in document.manifests:
        written = manifests[manifest.index]
        for j, artifact in enumerate(manifest.artifacts):
            if not artifact.uri.startswith("s3://"):
                continue  # GDK leaves other URIs alone
            if artifact.filename not in files:
                raise BuildError(f"{source}: Manifests[{manifest.index}].Artifacts[{j}].Uri: {artifact.uri!r}: the "
                                 f"build makes no file {artifact.filename!r} (it makes: "
                                 f"{', '.join(sorted(files)) or 'none'})")
            entry = written[_key(written, "Artifacts")][j]
            entry[_key(entry, "Uri")] = S3_PLACEHOLDER + artifact.filename
            used.add(artifact.filename)
    unused = files - used
    if unused:
        raise BuildError(f"{source}: no artifact Uri names {', '.join(sorted(unused))}, which the build makes "
                         f"for {name}: add `s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/<file>` to its manifests")
    return built


def recipe_bytes(doc: dict[str, Any], source: str) -> bytes:
    """The built recipe's YAML, once ggsim's parser has accepted exactly these bytes (size included)."""
    data = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10_000).encode()
    rules = recipe_rules()
    try:
        rules.parse_recipe_bytes(data, source, "yaml")
    except rules.RecipeError as exc:
        raise BuildError(str(exc)) from None
    return data


# ------------------------------------------------------------------------------------------------ archives


def deterministic_zip(entries: dict[str, bytes]) -> bytes:
    """A ZIP of `entries` (archive name → bytes): sorted, fixed timestamps and permissions, DEFLATE level 9."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for arcname in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
            info.create_system = 3  # Unix, so the permission bits below are honoured
            info.external_attr = (0o100644 & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[arcname], compresslevel=9)
    return buffer.getvalue()


def _tree(folder: Path, prefix: str) -> dict[str, bytes]:
    """Files under `folder` as archive entries under `prefix`, without caches and hidden files."""
    entries: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        if path.is_file() and path.suffix not in (".pyc", ".pyo"):
            entries[f"{prefix}{relative.as_posix()}"] = path.read_bytes()
    return entries


def _requirements(path: Path) -> list[tuple[str, str]]:
    """(normalised name, requirement line) of a requirements file, comments and blanks dropped."""
    result = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _REQUIREMENT_NAME.match(line)
        if match is None or line.startswith("-"):
            raise BuildError(f"{path}:{number}: {raw.strip()!r}: expected a pinned requirement like numpy==2.4.6")
        result.append((re.sub(r"[-_.]+", "-", match.group(1)).lower(), line))
    return result


def merged_requirements(*paths: Path) -> bytes:
    """The component's requirements with greenlens_common's; one line per package, conflicts refused."""
    seen: dict[str, tuple[str, Path]] = {}
    lines = ["# Built by tools/greenlens_build.py from: " + ", ".join(p.relative_to(REPO).as_posix() for p in paths)]
    for path in paths:
        for name, line in _requirements(path):
            if name in seen:
                if seen[name][0].replace(" ", "") != line.replace(" ", ""):
                    raise BuildError(f"{path}: {line!r} conflicts with {seen[name][0]!r} in {seen[name][1]}")
                continue
            seen[name] = (line, path)
            lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def code_archive(folder: Path, repo: Path = REPO) -> dict[str, bytes]:
    """A code component's archive entries: its package(s), greenlens_common, requirements, the venv installer."""
    packages = sorted(p for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    if not packages:
        raise BuildError(f"{folder}: no Python package (a folder with __init__.py) to ship")
    requirements = folder / "requirements.txt"
    if not requirements.is_file():
        raise BuildError(f"{requirements}: not found; every code component lists its runtime requirements there")
    common = repo / "components" / "common"
    entries: dict[str, bytes] = {}
    for package in [*packages, common / COMMON_PACKAGE]:
        entries.update(_tree(package, f"{package.name}/"))
    entries["requirements.txt"] = merged_requirements(requirements, common / "requirements.txt")
    entries[VENV_INSTALLER] = (repo / "tools" / VENV_INSTALLER).read_bytes()
    return entries


# ------------------------------------------------------------------------------------------------ build


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def build_component(project: Project, out: Path, *, versions: Iterable[str] | None = None,
                    repo: Path = REPO, extra_recipe_name: str | None = None,
                    include_broken: bool = False) -> list[Built]:
    """Build `project` (every version for greenlens.Model unless `versions`) into `out`; a deliberately
    broken greenlens.Model version only with `include_broken`."""
    source = repo / "recipes" / f"{project.name}.yaml"
    if not source.is_file():
        raise BuildError(f"{source}: not found; every component's recipe lives in recipes/<ComponentName>.yaml")
    doc = load_source_recipe(source)
    jobs: list[tuple[str, dict[str, bytes], str]] = []  # version, archive entries, description suffix
    if project.name == MODEL_COMPONENT:
        bundles = model_versions(repo)
        if project.version not in bundles:
            raise BuildError(f"{project.folder / 'gdk-config.json'}: component.{project.name}.version: "
                             f"{project.version!r}: expected one of the versions in components/model/versions.yaml "
                             f"({', '.join(bundles)})")
        broken = broken_model_versions(repo)
        wanted = list(versions) if versions is not None else [
            v for v in bundles if include_broken or v not in broken]
        for version in wanted:
            if version not in bundles:
                raise BuildError(f"{project.name} {version}: not in components/model/versions.yaml")
            if version in broken and not include_broken:
                raise BuildError(f"{project.name} {version}: components/model/versions.yaml marks it "
                                 "deliberately_broken (a test version, never published): build it with "
                                 "--include-broken, never with --gdk")
            bundle = bundles[version]
            jobs.append((version, _tree(bundle, ""), f"Bundle {bundle.name}."))
    else:
        wanted = list(versions) if versions is not None else [project.version]
        if wanted != [project.version]:
            raise BuildError(f"{project.name}: only version {project.version} (its gdk-config.json) can be built")
        # The recipe decides: a component whose recipe ships <Name>.zip is a code component.
        has_code = f"/{project.name}.zip" in json.dumps(doc)
        entries = code_archive(project.folder, repo) if has_code else {}
        jobs.append((project.version, entries, ""))

    results = []
    for version, entries, suffix in jobs:
        archive_name = f"{project.name}.zip"
        files = [archive_name] if entries else []
        built = fill_recipe(doc, name=project.name, version=version, author=project.author, source=source,
                            artifact_files=files, description_suffix=suffix)
        recipe_path = out / "recipes" / f"{project.name}-{version}.yaml"
        data = recipe_bytes(built, f"{recipe_path} (built from {source})")
        _write(recipe_path, data)
        if extra_recipe_name:
            _write(out / "recipes" / extra_recipe_name, data)
        artifact_dir = out / "artifacts" / project.name / version
        artifact_dir.mkdir(parents=True, exist_ok=True)
        artifacts = []
        if entries:
            artifact = artifact_dir / archive_name
            _write(artifact, deterministic_zip(entries))
            artifacts.append(artifact)
        results.append(Built(project.name, version, recipe_path, tuple(artifacts)))
    return results


def _select(projects: dict[str, Project], target: str) -> list[Project]:
    if target == "all":
        return [projects[name] for name in sorted(projects)]
    if target in projects:
        return [projects[target]]
    for project in projects.values():
        if project.folder.name == target and project.folder != REPO:
            return [project]
    raise BuildError(f"unknown component {target!r}: expected all, or one of {', '.join(sorted(projects))} "
                     "(or its folder name under components/)")


def _gdk_recipe_name(folder: Path) -> str:
    """The file name `gdk component publish` reads from greengrass-build/recipes/ (its project recipe, resolved)."""
    found = [folder / name for name in ("recipe.json", "recipe.yaml") if (folder / name).exists()]
    if len(found) != 1:
        raise BuildError(f"{folder}: expected exactly one of recipe.json or recipe.yaml (GDK's project recipe), "
                         f"found {len(found)}")
    return found[0].resolve().name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="greenlens_build.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", nargs="?", default="all", help="all (default), a component name or its folder")
    ap.add_argument("--out", type=Path, help="output folder (default build/deploy; with --gdk ./greengrass-build)")
    ap.add_argument("--include-broken", action="store_true",
                    help="also build greenlens.Model versions versions.yaml marks deliberately_broken (tests only)")
    ap.add_argument("--gdk", action="store_true",
                    help="GDK custom build: the component of ./gdk-config.json, at its version, into ./greengrass-build")
    args = ap.parse_args(argv)
    try:
        projects = load_projects()
        if args.gdk:
            here = load_project(Path.cwd() / "gdk-config.json")
            if args.target not in ("all", here.name):
                raise BuildError(f"{Path.cwd() / 'gdk-config.json'}: names {here.name}, not {args.target}")
            project = projects.get(here.name)
            if project is None or project.folder.resolve() != Path.cwd().resolve():
                raise BuildError(f"{Path.cwd()}: not one of this repository's GDK projects")
            out = args.out or Path("greengrass-build")
            built = build_component(project, out, versions=[project.version],
                                    extra_recipe_name=_gdk_recipe_name(project.folder))
        else:
            selected = _select(projects, args.target)
            out = args.out or REPO / "build" / "deploy"
            if args.target == "all":  # no stale versions left behind (GDK likewise starts from an empty folder)
                for sub in ("recipes", "artifacts"):
                    shutil.rmtree(out / sub, ignore_errors=True)
            built = [b for project in selected
                     for b in build_component(project, out, include_broken=args.include_broken)]
    except BuildError as exc:
        print(f"greenlens_build: {exc}", file=sys.stderr)
        return 1
    for b in built:
        print(f"{b.name} {b.version}: {b.recipe}")
        for artifact in b.artifacts:
            print(f"  {artifact} sha256 {hashlib.sha256(artifact.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
