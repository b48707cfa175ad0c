"""The recipes, the build and the GDK projects as GDK, the nucleus and a device owner would see them.

- every gdk-config.json passes GDK v1.6.2's own config schema (../shared/spec/gdk/config_schema.json);
- every source recipe and every built recipe passes GDK's recipe schema with keys lower-cased as GDK does,
  and is at most 16,000 bytes;
- every built recipe loads with ggsim's recipe loader on linux amd64, aarch64 and arm (and not on a
  device reporting x86_64, which no nucleus does);
- two builds give byte-identical recipes and archives;
- the GDK custom build command of each project writes what `gdk component publish` reads.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from ggsim.nucleus.recipe import PlatformMismatchError, load_recipe

from tools import greenlens_build

REPO = Path(__file__).resolve().parent.parent
GDK_SPEC = REPO.parent / "shared" / "spec" / "gdk"
BUILD = [sys.executable, str(REPO / "tools" / "greenlens_build.py")]
NAMES = ["greenlens.App", "greenlens.Capture", "greenlens.Inference", "greenlens.Model", "greenlens.StreamPublisher"]
CODE = ["greenlens.Capture", "greenlens.Inference", "greenlens.StreamPublisher"]
PLATFORMS = ["amd64", "aarch64", "arm"]
RECIPE_LIMIT = 16_000



def schema(name: str) -> dict:
    path = GDK_SPEC / name
    assert path.is_file(), f"GDK's schema {path} is missing: the tests need ../shared/spec/gdk beside the repo"
    return json.loads(path.read_text())


def lower_keys(value: object) -> object:
    """GDK's CaseInsensitiveRecipeFile: every mapping key lower-cased before schema validation."""
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def gdk_validate_recipe(path: Path, **transform: str) -> dict:
    """GDK's checks of a recipe: size, then schema with keys lower-cased; `transform` first sets top-level
    keys as GDK's build transform does before it validates (ComponentName, ComponentVersion, ...)."""
    data = path.read_bytes()
    assert len(data) <= RECIPE_LIMIT, f"{path}: {len(data)} bytes, GDK accepts at most {RECIPE_LIMIT}"
    doc = yaml.safe_load(data)
    jsonschema.Draft7Validator(schema("recipe_schema.json")).validate(lower_keys({**doc, **transform}))
    return doc


def gdk_configs() -> list[Path]:
    return [REPO / "gdk-config.json", *sorted((REPO / "components").glob("*/gdk-config.json"))]


def build(out: Path, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BUILD, *args, "--out", str(out)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    outs = []
    for n in (1, 2):
        out = tmp_path_factory.mktemp(f"build{n}")
        result = build(out, "all")
        assert result.returncode == 0, result.stderr
        outs.append(out)
    return outs[0], outs[1]


def test_every_gdk_config_is_accepted_by_gdk_and_builds_with_the_one_build_tool() -> None:
    configs = gdk_configs()
    names = []
    for path in configs:
        doc = json.loads(path.read_text())
        jsonschema.Draft7Validator(schema("config_schema.json")).validate(doc)
        (name, fields), = doc["component"].items()
        names.append(name)
        build_config = fields["build"]
        assert build_config["build_system"] == "custom"
        command = build_config["custom_build_command"]
        # GDK runs it without a shell: a single string would be taken as the program's name.
        assert isinstance(command, list) and command[-2:] == [name, "--gdk"]
        assert (path.parent / command[1]).resolve() == REPO / "tools" / "greenlens_build.py"
        # GDK needs its project recipe beside gdk-config.json; here it is the single source, linked.
        assert (path.parent / "recipe.yaml").resolve() == REPO / "recipes" / f"{name}.yaml"
    assert sorted(names) == NAMES


def test_source_recipes_pass_gdk_validation_with_placeholders_and_quoted_format_version() -> None:
    for name in NAMES:
        path = REPO / "recipes" / f"{name}.yaml"
        # GDK fills in name, version and publisher (its build transform) before it validates.
        doc = gdk_validate_recipe(path, ComponentName=name, ComponentVersion="1.0.0", ComponentPublisher="me")
        assert doc["RecipeFormatVersion"] == "2020-01-25"  # a string: unquoted it would be a date
        assert doc["ComponentName"] == "{COMPONENT_NAME}" and doc["ComponentVersion"] == "{COMPONENT_VERSION}"
        architectures = [m["Platform"]["architecture"] for m in doc["Manifests"]]
        assert architectures == PLATFORMS, f"{path}: manifests for {architectures}"


def test_built_recipes_pass_gdk_validation_and_name_their_artifacts(builds: tuple[Path, Path]) -> None:
    out, _ = builds
    recipes = sorted((out / "recipes").iterdir())
    model_versions = [v for v in greenlens_build.model_versions() if v not in greenlens_build.broken_model_versions()]
    expected = {f"{n}-{greenlens_build.load_projects()[n].version}.yaml" for n in NAMES if n != "greenlens.Model"}
    expected |= {f"greenlens.Model-{v}.yaml" for v in model_versions}
    assert {p.name for p in recipes} == expected
    for path in recipes:
        doc = gdk_validate_recipe(path)
        name, version = doc["ComponentName"], doc["ComponentVersion"]
        assert path.name == f"{name}-{version}.yaml"
        assert doc["ComponentPublisher"] == "GreenLens"
        uris = {a["Uri"] for m in doc["Manifests"] for a in m.get("Artifacts", [])}
        if name == "greenlens.App":
            assert uris == set()
            continue
        assert uris == {f"s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/{name}.zip"}
        assert (out / "artifacts" / name / version / f"{name}.zip").is_file()


@pytest.mark.parametrize("architecture", PLATFORMS)
def test_built_recipes_load_in_the_simulator_on_each_platform(builds: tuple[Path, Path], architecture: str) -> None:
    out, _ = builds
    packages = {"greenlens.Capture": "greenlens_capture", "greenlens.Inference": "greenlens_inference",
                "greenlens.StreamPublisher": "greenlens_publisher"}
    for path in sorted((out / "recipes").iterdir()):
        recipe = load_recipe(path, platform={"os": "linux", "architecture": architecture})
        if recipe.name in CODE:
            assert [a.filename for a in recipe.artifacts] == [f"{recipe.name}.zip"]
            assert recipe.artifacts[0].unarchive == "ZIP"
            # Install, then one long-running step: Run, or Startup for a component that reports RUNNING itself.
            assert "component_venv.py" in recipe.lifecycle["install"].script
            (step, main), = [(k, v) for k, v in recipe.lifecycle.items() if k != "install"]
            assert step in ("run", "startup")
            assert f"venv/bin/python -u -m {packages[recipe.name]}" in main.script
        if recipe.name == "greenlens.Inference":
            assert recipe.dependencies["greenlens.Model"].dependency_type == "HARD"
            assert "--model-dir {greenlens.Model:artifacts:decompressedPath}/greenlens.Model" in main.script
        if recipe.name == "greenlens.Model":
            assert recipe.lifecycle == {} and recipe.artifacts[0].read == "ALL"
        if recipe.name == "greenlens.App":
            assert set(recipe.dependencies) == set(NAMES) - {"greenlens.App"}
            assert recipe.lifecycle == {} and recipe.artifacts == []


def test_no_manifest_claims_x86_64_which_no_nucleus_reports(builds: tuple[Path, Path]) -> None:
    out, _ = builds
    for path in sorted((out / "recipes").iterdir()):
        with pytest.raises(PlatformMismatchError):
            load_recipe(path, platform={"os": "linux", "architecture": "x86_64"})


def test_two_builds_are_byte_identical(builds: tuple[Path, Path]) -> None:
    first, second = builds

    def digests(out: Path) -> dict[str, str]:
        return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out.rglob("*")) if p.is_file()}

    one, two = digests(first), digests(second)
    assert len([k for k in one if k.endswith(".zip")]) == len(CODE) + len(
        set(greenlens_build.model_versions()) - greenlens_build.broken_model_versions())
    assert one == two


def test_code_archives_hold_the_package_common_requirements_and_installer(builds: tuple[Path, Path]) -> None:
    out, _ = builds
    packages = {"greenlens.Capture": "greenlens_capture", "greenlens.Inference": "greenlens_inference",
                "greenlens.StreamPublisher": "greenlens_publisher"}
    for name, package in packages.items():
        version = greenlens_build.load_projects()[name].version
        with zipfile.ZipFile(out / "artifacts" / name / version / f"{name}.zip") as archive:
            names = archive.namelist()
            assert names == sorted(names)
            assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
            assert f"{package}/__main__.py" in names and "greenlens_common/ring.py" in names
            assert "component_venv.py" in names and "requirements.txt" in names
            assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
            requirements = archive.read("requirements.txt").decode()
            for line in (REPO / "components" / "common" / "requirements.txt").read_text().splitlines():
                if line and not line.startswith("#"):
                    assert line in requirements.splitlines()


def test_every_model_version_ships_its_bundle(builds: tuple[Path, Path]) -> None:
    out, _ = builds
    broken = greenlens_build.broken_model_versions()
    assert broken and not any((out / "artifacts" / "greenlens.Model" / v).exists() for v in broken), \
        "a deliberately broken version is built only with --include-broken"
    for version, bundle in greenlens_build.model_versions().items():
        if version in broken:
            continue
        with zipfile.ZipFile(out / "artifacts" / "greenlens.Model" / version / "greenlens.Model.zip") as archive:
            assert sorted(archive.namelist()) == sorted(
                p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
            for member in archive.namelist():
                assert archive.read(member) == (bundle / member).read_bytes()
            assert json.loads(archive.read("model.json"))["version"] == version


@pytest.mark.parametrize("config", gdk_configs(), ids=lambda p: p.parent.name)
def test_the_gdk_custom_build_command_writes_what_gdk_publish_reads(config: Path) -> None:
    """As `gdk component build` with build_system custom: greengrass-build/ emptied, the command run in the
    project folder without a shell (its `python3` replaced by this interpreter), no transform afterwards."""
    doc = json.loads(config.read_text())
    (name, fields), = doc["component"].items()
    version = fields["version"]
    project = config.parent
    output = project / "greengrass-build"
    try:
        shutil.rmtree(output, ignore_errors=True)
        (output / "recipes").mkdir(parents=True)
        (output / "artifacts" / name / version).mkdir(parents=True)
        command = [sys.executable, *fields["build"]["custom_build_command"][1:]]
        result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        # `gdk component publish` reads greengrass-build/recipes/<project recipe file name, resolved>.
        published = output / "recipes" / (project / "recipe.yaml").resolve().name
        doc = gdk_validate_recipe(published)
        assert doc["ComponentName"] == name and doc["ComponentVersion"] == version
        assert (output / "recipes" / f"{name}-{version}.yaml").read_bytes() == published.read_bytes()
        files = sorted(p.name for p in (output / "artifacts" / name / version).iterdir())
        assert files == ([] if name == "greenlens.App" else [f"{name}.zip"])
        assert sorted(p.name for p in (output / "artifacts").iterdir()) == [name]
    finally:
        shutil.rmtree(output, ignore_errors=True)


def test_bad_sources_get_a_clear_error_naming_file_key_and_value(tmp_path: Path) -> None:
    unquoted = tmp_path / "greenlens.Bad.yaml"
    unquoted.write_text("RecipeFormatVersion: 2020-01-25\nComponentName: x\n")
    with pytest.raises(greenlens_build.BuildError, match=r"greenlens\.Bad\.yaml: RecipeFormatVersion: .*quote"):
        greenlens_build.load_source_recipe(unquoted)

    source = yaml.safe_load((REPO / "recipes" / "greenlens.Capture.yaml").read_text())
    with pytest.raises(greenlens_build.BuildError, match=r"Artifacts\[0\]\.Uri: .*greenlens\.Capture\.zip.*makes: "
                                                         r"greenlens\.Other\.zip"):
        greenlens_build.fill_recipe(source, name="greenlens.Capture", version="1.0.0", author="a", source=unquoted,
                                    artifact_files=["greenlens.Other.zip"])

    config = tmp_path / "gdk-config.json"
    config.write_text(json.dumps({"component": {"greenlens.X": {"author": "a", "version": "NEXT_PATCH"}}}))
    with pytest.raises(greenlens_build.BuildError, match=r"component\.greenlens\.X\.version: 'NEXT_PATCH'"):
        greenlens_build.load_project(config)

    unknown = build(tmp_path / "out", "greenlens.Nothing")
    assert unknown.returncode == 1
    assert "unknown component 'greenlens.Nothing'" in unknown.stderr and "greenlens.Capture" in unknown.stderr


def test_the_build_refuses_what_ggsims_recipe_parser_refuses(tmp_path: Path) -> None:
    source = yaml.safe_load((REPO / "recipes" / "greenlens.Capture.yaml").read_text())
    source["Manifests"][0]["Lifecycle"]["Run"] = {"Timeout": 5}
    with pytest.raises(greenlens_build.BuildError, match=r"greenlens\.Capture\.yaml: Manifests\[0\]\.Lifecycle\.Run\."
                                                         r"Script: missing"):
        greenlens_build.fill_recipe(source, name="greenlens.Capture", version="1.0.0", author="a",
                                    source=tmp_path / "greenlens.Capture.yaml", artifact_files=["greenlens.Capture.zip"])
    with pytest.raises(greenlens_build.BuildError, match=r"component\.greenlens\.Capture\.version: '1\.0' is not a "
                                                         r"semantic version"):
        config = tmp_path / "gdk-config.json"
        config.write_text(json.dumps({"component": {"greenlens.Capture": {"author": "a", "version": "1.0"}}}))
        greenlens_build.load_project(config)
    big = {"RecipeFormatVersion": "2020-01-25", "ComponentName": "greenlens.Big", "ComponentVersion": "1.0.0",
           "ComponentDescription": "x" * 16_100, "Manifests": [{"Lifecycle": {}}]}
    with pytest.raises(greenlens_build.BuildError, match=r"big\.yaml: the recipe is \d+ bytes; Greengrass accepts at "
                                                         r"most 16000"):
        greenlens_build.recipe_bytes(big, "big.yaml")


def test_a_python_without_a_package_the_recipe_parser_needs_gets_a_clear_error(tmp_path: Path) -> None:
    """GDK runs the build with the user's python3, which has PyYAML (GDK needs it) but maybe not semantic_version."""
    script = str(REPO / "tools" / "greenlens_build.py")
    code = ("import runpy, sys; sys.modules['semantic_version'] = None; "
            f"sys.argv = [{script!r}, 'greenlens.Capture', '--out', {str(tmp_path)!r}]; "
            f"runpy.run_path({script!r}, run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1
    assert "ggsim's recipe parser" in result.stderr
    assert "needs the Python package 'semantic_version'" in result.stderr
    assert "pip install semantic_version" in result.stderr
    assert not (tmp_path / "recipes").exists()


def test_requirements_that_disagree_are_refused(tmp_path: Path) -> None:
    mine, common = tmp_path / "a.txt", tmp_path / "b.txt"
    mine.write_text("numpy==2.4.6\n")
    common.write_text("# comment\nnumpy==1.26.4\n")
    old = greenlens_build.REPO
    greenlens_build.REPO = tmp_path  # names in the header are relative to the repository
    try:
        with pytest.raises(greenlens_build.BuildError, match=r"b\.txt: 'numpy==1\.26\.4' conflicts with "
                                                             r"'numpy==2\.4\.6' in .*a\.txt"):
            greenlens_build.merged_requirements(mine, common)
        common.write_text("numpy==2.4.6\nPyYAML==6.0.3\n")
        merged = greenlens_build.merged_requirements(mine, common).decode().splitlines()
        assert merged[1:] == ["numpy==2.4.6", "PyYAML==6.0.3"]
    finally:
        greenlens_build.REPO = old


def test_component_venv_install_is_idempotent_and_offline_on_the_project_venv(tmp_path: Path) -> None:
    """The Install step: first run builds the venv on top of this interpreter's packages (no download:
    the pins are already installed here), a second run is a no-op, a changed requirements file rebuilds."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("PyYAML==6.0.3\njsonschema==4.26.0\n")
    venv = tmp_path / "work" / "venv"
    command = [sys.executable, str(REPO / "tools" / "component_venv.py"), "--requirements", str(requirements),
               "--venv", str(venv)]
    env = dict(os.environ, PIP_NO_INDEX="1")  # prove that nothing needs the network

    first = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{venv} built" in first.stdout
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import yaml, jsonschema; print(yaml.__version__)"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "6.0.3", probe.stderr
    marker = (venv / ".greenlens-venv.json").stat().st_mtime_ns

    second = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert second.returncode == 0 and f"{venv} up to date" in second.stdout
    assert (venv / ".greenlens-venv.json").stat().st_mtime_ns == marker

    requirements.write_text("PyYAML==6.0.3\n")
    third = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert third.returncode == 0 and f"{venv} built" in third.stdout

    requirements.write_text("no-such-package-greenlens==1.0\n")
    failed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert failed.returncode == 1
    assert f"pip install -r {requirements} exited" in failed.stderr


def test_archives_are_what_the_zip_reader_expects() -> None:
    data = greenlens_build.deterministic_zip({"b/x.py": b"x", "a.txt": b"a"})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["a.txt", "b/x.py"]
        assert archive.testzip() is None
        assert {(i.external_attr >> 16) & 0o777 for i in archive.infolist()} == {0o644}
    assert data == greenlens_build.deterministic_zip({"a.txt": b"a", "b/x.py": b"x"})
