"""The component store: root layout, recipe and artifact import, safe ZIP unarchiving (spec components §1.4, §2.3)."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from ggsim.nucleus.recipe import RecipeError
from ggsim.nucleus.store import Store, StoreError, unarchive_zip

LINUX = {"os": "linux", "architecture": "amd64"}


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_layout_is_created(tmp_path: Path) -> None:
    store = Store(tmp_path / "gg")
    for sub in ("packages/recipes", "packages/artifacts", "packages/artifacts-unarchived", "work", "logs", "config",
                "deployments"):
        assert (tmp_path / "gg" / sub).is_dir(), sub
    assert store.layout.root == tmp_path / "gg"


def test_import_recipes_recursively_and_list_versions_in_semver_order(tmp_path: Path, recipes: Any) -> None:
    for version in ("1.9.0", "1.10.0", "1.2.0"):
        recipes.add("com.example.A", version)
    nested = recipes.dir / "more"
    nested.mkdir()
    (nested / "b.json").write_text(
        '{"RecipeFormatVersion": "2020-01-25", "ComponentName": "com.example.B", "ComponentVersion": "0.1.0",'
        ' "Manifests": [{"Lifecycle": {"Run": "echo b"}}]}'
    )
    (recipes.dir / "README.md").write_text("not a recipe")
    store = Store(tmp_path / "gg")
    imported = store.import_recipes(recipes.dir)
    assert sorted((d.name, d.version) for d in imported) == [
        ("com.example.A", "1.10.0"), ("com.example.A", "1.2.0"), ("com.example.A", "1.9.0"), ("com.example.B", "0.1.0")]
    assert store.versions("com.example.A") == ["1.2.0", "1.9.0", "1.10.0"]
    assert store.versions("com.example.Unknown") == []
    stored = store.layout.recipe_path("com.example.B", "0.1.0")
    assert stored.name.endswith("@0.1.0.recipe.yaml") and stored.is_file()
    assert store.load("com.example.B", "0.1.0", LINUX).lifecycle["run"].script == "echo b"


def test_a_bad_recipe_aborts_the_import_and_stores_nothing(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0")
    bad = recipes.dir / "zz-bad.yaml"
    bad.write_text('RecipeFormatVersion: "2020-01-25"\nComponentName: com.example.Z\nComponentVersion: NEXT_PATCH\n'
                   "Manifests: [{}]\n")
    store = Store(tmp_path / "gg")
    with pytest.raises(RecipeError, match=r"zz-bad.yaml: ComponentVersion: 'NEXT_PATCH' is a placeholder"):
        store.import_recipes(recipes.dir)
    assert store.versions("com.example.A") == []


def test_two_files_defining_one_version_are_refused(tmp_path: Path, recipes: Any) -> None:
    first = recipes.add("com.example.A", "1.0.0")
    (recipes.dir / "copy.yaml").write_text(first.read_text())
    with pytest.raises(RecipeError, match=r"com.example.A 1.0.0 is also defined by"):
        Store(tmp_path / "gg").import_recipes(recipes.dir)


def test_missing_recipe_directory_and_missing_stored_recipe(tmp_path: Path) -> None:
    store = Store(tmp_path / "gg")
    with pytest.raises(StoreError, match=r"recipe directory .*nowhere does not exist"):
        store.import_recipes(tmp_path / "nowhere")
    with pytest.raises(StoreError, match=r"no recipe for com.example.A 9.9.9 in the component store"):
        store.load("com.example.A", "9.9.9")


def test_import_artifacts_copies_name_version_layout_and_replaces_files(tmp_path: Path) -> None:
    source = tmp_path / "artifacts"
    (source / "com.example.A" / "1.0.0" / "sub").mkdir(parents=True)
    (source / "com.example.A" / "1.0.0" / "run.sh").write_text("v1")
    (source / "com.example.A" / "1.0.0" / "sub" / "data.txt").write_text("data")
    store = Store(tmp_path / "gg")
    assert store.import_artifacts(source) == [("com.example.A", "1.0.0")]
    target = store.layout.artifacts_path("com.example.A", "1.0.0")
    assert (target / "run.sh").read_text() == "v1" and (target / "sub" / "data.txt").read_text() == "data"
    (target / "run.sh").chmod(0o400)  # artifacts are made read-only; a rebuilt file must still replace it
    (source / "com.example.A" / "1.0.0" / "run.sh").write_text("v2")
    store.import_artifacts(source)
    assert (target / "run.sh").read_text() == "v2"


def test_artifact_directory_must_exist_and_not_contain_the_root(tmp_path: Path) -> None:
    store = Store(tmp_path / "gg")
    with pytest.raises(StoreError, match=r"artifact directory .*missing does not exist"):
        store.import_artifacts(tmp_path / "missing")
    with pytest.raises(StoreError, match=r"contains the Greengrass root"):
        store.import_artifacts(tmp_path)


def test_missing_artifact_is_an_error_naming_where_it_was_looked_for(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.A", "1.0.0", artifacts=[{"Uri": "s3://my-bucket/com.example.A/1.0.0/app.zip"}])
    store = Store(tmp_path / "gg")
    store.import_recipes(recipes.dir)
    recipe = store.load("com.example.A", "1.0.0", LINUX)
    with pytest.raises(StoreError) as err:
        store.prepare_artifacts(recipe, tmp_path / "artifacts")
    message = str(err.value)
    assert "artifact 'app.zip' of com.example.A 1.0.0 (s3://my-bucket/com.example.A/1.0.0/app.zip) is missing" in message
    assert str(tmp_path / "artifacts" / "com.example.A" / "1.0.0" / "app.zip") in message
    assert str(store.layout.artifacts_path("com.example.A", "1.0.0") / "app.zip") in message
    assert "never downloads" in message


def test_zip_artifact_is_unarchived_under_its_stem_with_permissions(tmp_path: Path, recipes: Any) -> None:
    recipes.add(
        "com.example.A",
        "1.0.0",
        artifacts=[
            {"Uri": "s3://b/com.example.A.zip", "Unarchive": "ZIP", "Permission": {"Execute": "ALL"}},
            {"Uri": "s3://b/tool.sh", "Permission": {"Read": "OWNER", "Execute": "OWNER"}},
        ],
    )
    artifacts = tmp_path / "artifacts" / "com.example.A" / "1.0.0"
    make_zip(artifacts / "com.example.A.zip", {"main.py": b"print(1)\n", "pkg/mod.py": b"x = 1\n"})
    (artifacts / "tool.sh").write_text("#!/bin/sh\n")
    store = Store(tmp_path / "gg")
    store.import_recipes(recipes.dir)
    store.import_artifacts(tmp_path / "artifacts")
    recipe = store.load("com.example.A", "1.0.0", LINUX)
    store.prepare_artifacts(recipe)

    unpacked = store.layout.decompressed_path("com.example.A", "1.0.0") / "com.example.A"
    assert (unpacked / "main.py").read_text() == "print(1)\n"
    assert (unpacked / "pkg" / "mod.py").read_text() == "x = 1\n"
    main_mode = (unpacked / "main.py").stat().st_mode
    assert main_mode & stat.S_IXOTH and main_mode & stat.S_IROTH
    tool_mode = (store.layout.artifacts_path("com.example.A", "1.0.0") / "tool.sh").stat().st_mode
    assert tool_mode & stat.S_IXUSR and not tool_mode & stat.S_IROTH


def test_a_changed_archive_is_extracted_again(tmp_path: Path) -> None:
    target = tmp_path / "out" / "models"
    archive = make_zip(tmp_path / "models.zip", {"a.txt": b"a", "old.txt": b"old"})
    unarchive_zip(archive, target)
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == ["a.txt", "old.txt"]
    make_zip(archive, {"a.txt": b"A2"})
    unarchive_zip(archive, target)
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == ["a.txt"]
    assert (target / "a.txt").read_text() == "A2"


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.txt", "escapes the target folder with '..'"),
        ("ok/../../evil.txt", "escapes the target folder with '..'"),
        ("/tmp/evil.txt", "has an absolute path"),
    ],
)
def test_zip_slip_is_refused_and_nothing_escapes(tmp_path: Path, member: str, reason: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("fine.txt", b"fine")
        zf.writestr(zipfile.ZipInfo(member), b"evil")
    archive = tmp_path / "in" / "slip.zip"
    archive.parent.mkdir()
    archive.write_bytes(buffer.getvalue())
    target = tmp_path / "deep" / "out" / "slip"
    with pytest.raises(StoreError) as err:
        unarchive_zip(archive, target)
    assert f"ZIP archive {archive}: member {member!r} {reason}" in str(err.value)
    assert not (tmp_path / "deep" / "evil.txt").exists() and not (tmp_path / "deep" / "out" / "evil.txt").exists()
    assert not target.exists()


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(StoreError, match=r"member 'link' is a symbolic link; refusing to extract"):
        unarchive_zip(archive, tmp_path / "out")


def test_corrupt_archives_give_a_clear_error(tmp_path: Path) -> None:
    not_zip = tmp_path / "model.zip"
    not_zip.write_bytes(os.urandom(64))
    with pytest.raises(StoreError, match=r"ZIP archive .*model.zip cannot be read"):
        unarchive_zip(not_zip, tmp_path / "out")

    damaged = make_zip(tmp_path / "damaged.zip", {"weights.bin": b"0123456789" * 100})
    data = bytearray(damaged.read_bytes())
    data[60] ^= 0xFF  # flip a byte inside the stored member's data (after the 30+11 byte header)
    damaged.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"damaged.zip is corrupt: member .weights.bin. fails its CRC check"):
        unarchive_zip(damaged, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_docker_artifacts_are_not_supported(tmp_path: Path, recipes: Any) -> None:
    recipes.add("com.example.D", "1.0.0", artifacts=[{"Uri": "docker:registry.example/app:1"}])
    store = Store(tmp_path / "gg")
    store.import_recipes(recipes.dir)
    with pytest.raises(StoreError, match=r"docker:registry.example/app:1 of com.example.D 1.0.0: docker artifacts"):
        store.prepare_artifacts(store.load("com.example.D", "1.0.0", LINUX))
