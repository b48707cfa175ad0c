"""The component store under a Greengrass root: recipes, artifacts and unarchived artifacts.

Where each file lives is `ggsim.nucleus.layout.RootLayout`'s business (spec components §2.3); the store
reads and writes there. ggsim never downloads: a local deployment brings its artifacts in an artifact
directory laid out `<dir>/<name>/<version>/<files>`; an artifact that is in neither place is an error naming
where it was looked for (spec: local deployments that still try S3 are a known complaint).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import semantic_version
import yaml

from ggsim.files import write_atomically
from ggsim.nucleus.layout import RECIPE_SUFFIX, RootLayout, recipe_name_key
from ggsim.nucleus.recipe import (
    Artifact,
    Recipe,
    RecipeDocument,
    RecipeError,
    load_recipe_document,
    parse_recipe_bytes,
)

RECIPE_SUFFIXES = (".yaml", ".yml", ".json")
_UNARCHIVED_MARKER = ".ggsim-archive-sha256"


class StoreError(Exception):
    """The component store cannot provide what was asked (missing artifact, bad archive, bad directory)."""


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
    except ValueError:
        return False
    return True


class Store:
    """The component store of one Greengrass root (its folders are created if missing)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.layout = RootLayout(self.root)
        self.layout.create()

    # ---------------------------------------------------------------- recipes

    def add_recipe(self, document: RecipeDocument) -> Path:
        """Store a validated recipe (re-serialised as YAML, as the nucleus does)."""
        path = self.layout.recipe_path(document.name, document.version)
        write_atomically(path, yaml.safe_dump(document.raw, sort_keys=False, allow_unicode=True))
        return path

    def import_recipes(self, recipe_dir: str | Path) -> list[RecipeDocument]:
        """Parse every .yaml/.yml/.json file under `recipe_dir` (recursively) and store them all.

        Any file that fails to parse aborts the import before anything is stored.
        """
        folder = Path(recipe_dir)
        if not folder.is_dir():
            raise StoreError(f"recipe directory {folder} does not exist or is not a directory")
        documents: list[RecipeDocument] = []
        seen: dict[tuple[str, str], Path] = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if path.suffix.lower() not in RECIPE_SUFFIXES:
                continue
            document = load_recipe_document(path)
            key = (document.name, document.version)
            if key in seen:
                raise RecipeError(
                    str(path), "", f"{document.name} {document.version} is also defined by {seen[key]}; "
                    "one recipe per component version"
                )
            seen[key] = path
            documents.append(document)
        for document in documents:
            self.add_recipe(document)
        return documents

    def versions(self, name: str) -> list[str]:
        """Versions of `name` in the recipe store, ascending."""
        prefix = f"{recipe_name_key(name)}@"
        found = []
        for path in self.layout.recipes_dir.glob(f"{prefix}*{RECIPE_SUFFIX}"):
            version = path.name[len(prefix):-len(RECIPE_SUFFIX)]
            try:
                semantic_version.Version(version)
            except ValueError:
                continue
            found.append(version)
        return sorted(found, key=semantic_version.Version)

    def load_document(self, name: str, version: str) -> RecipeDocument:
        path = self.layout.recipe_path(name, version)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"no recipe for {name} {version} in the component store ({self.layout.recipes_dir})") from None
        return parse_recipe_bytes(data, f"{name}@{version} (component store)", "yaml", source_path=path,
                                  check_size=False)

    def load(self, name: str, version: str, platform: Mapping[str, str] | None = None) -> Recipe:
        """The stored recipe of `name` `version`, with the manifest for `platform` selected."""
        return self.load_document(name, version).for_platform(platform)

    # -------------------------------------------------------------- artifacts

    def import_artifacts(self, artifact_dir: str | Path) -> list[tuple[str, str]]:
        """Copy `<dir>/<name>/<version>/...` into the artifact store; returns the (name, version) pairs copied."""
        folder = Path(artifact_dir).resolve()
        if not folder.is_dir():
            raise StoreError(f"artifact directory {folder} does not exist or is not a directory")
        if _is_within(self.root, folder):
            raise StoreError(
                f"artifact directory {folder} contains the Greengrass root {self.root}; use a directory outside it"
            )
        copied: list[tuple[str, str]] = []
        for name_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            for version_dir in sorted(p for p in name_dir.iterdir() if p.is_dir()):
                target = self.layout.artifacts_path(name_dir.name, version_dir.name)
                target.mkdir(parents=True, exist_ok=True)
                for source in sorted(version_dir.rglob("*")):
                    destination = target / source.relative_to(version_dir)
                    if source.is_dir():
                        destination.mkdir(parents=True, exist_ok=True)
                        continue
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    if destination.exists() or destination.is_symlink():
                        destination.unlink()
                    shutil.copyfile(source, destination)
                copied.append((name_dir.name, version_dir.name))
        return copied

    def artifact_file(self, recipe: Recipe, artifact: Artifact) -> Path:
        return self.layout.artifacts_path(recipe.name, recipe.version) / artifact.filename

    def prepare_artifacts(self, recipe: Recipe, artifact_dir: str | Path | None = None) -> None:
        """Make every artifact of `recipe` ready: present in the store, permissions set, ZIPs unarchived."""
        for artifact in recipe.artifacts:
            if artifact.uri.lower().startswith("docker:"):
                raise StoreError(
                    f"artifact {artifact.uri} of {recipe.name} {recipe.version}: docker artifacts are not "
                    "supported by ggsim"
                )
            path = self.artifact_file(recipe, artifact)
            if not path.is_file():
                looked = [str(path)]
                if artifact_dir is not None:
                    looked.insert(0, str(Path(artifact_dir) / recipe.name / recipe.version / artifact.filename))
                raise StoreError(
                    f"artifact {artifact.filename!r} of {recipe.name} {recipe.version} ({artifact.uri}) is missing: "
                    f"looked for {' and '.join(looked)}. ggsim never downloads artifacts; put the file in the "
                    f"artifact directory as <dir>/{recipe.name}/{recipe.version}/{artifact.filename}"
                )
            _apply_permission(path, artifact)
            if artifact.unarchive == "ZIP":
                target = self.layout.decompressed_path(recipe.name, recipe.version) / _archive_stem(artifact.filename)
                unarchive_zip(path, target)
                _apply_permission_tree(target, artifact)

    def prune(self, keep: Mapping[str, set[str]]) -> None:
        """Remove artifacts and unarchived artifacts of versions not in `keep` (name -> versions)."""
        for base in (self.layout.artifacts_dir, self.layout.unarchived_dir):
            for name_dir in base.iterdir():
                if not name_dir.is_dir():
                    continue
                for version_dir in name_dir.iterdir():
                    if version_dir.name not in keep.get(name_dir.name, set()):
                        _rmtree(version_dir)


def _archive_stem(filename: str) -> str:
    """`models.zip` -> `models`, `com.example.X.zip` -> `com.example.X` (last extension dropped)."""
    return filename.rsplit(".", 1)[0] if "." in filename else filename


def _file_mode(artifact: Artifact, directory: bool = False) -> int:
    mode = stat.S_IRUSR | stat.S_IWUSR
    if artifact.read == "ALL" or artifact.execute == "ALL":
        mode |= stat.S_IRGRP | stat.S_IROTH
    if artifact.execute in ("OWNER", "ALL") or directory:
        mode |= stat.S_IXUSR
    if artifact.execute == "ALL" or directory:
        mode |= stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    return mode


def _apply_permission(path: Path, artifact: Artifact) -> None:
    os.chmod(path, _file_mode(artifact))


def _apply_permission_tree(target: Path, artifact: Artifact) -> None:
    """Permission settings apply to all extracted files; folders get read+execute for all."""
    for dirpath, _dirnames, filenames in os.walk(target):
        os.chmod(dirpath, _file_mode(artifact, directory=True))
        for filename in filenames:
            if filename == _UNARCHIVED_MARKER:
                continue
            full = os.path.join(dirpath, filename)
            if not os.path.islink(full):
                os.chmod(full, _file_mode(artifact))


def _rmtree(path: Path) -> None:
    def make_writable(func, failed_path, _exc_info):  # type: ignore[no-untyped-def]
        os.chmod(failed_path, stat.S_IRWXU)
        func(failed_path)

    if path.is_dir() and not path.is_symlink():
        for dirpath, _dirnames, _filenames in os.walk(path):
            os.chmod(dirpath, stat.S_IRWXU)
        shutil.rmtree(path, onerror=make_writable)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unarchive_zip(archive: str | Path, target: str | Path) -> None:
    """Extract a ZIP into `target` safely: no member may land outside it, symlinks are refused.

    Re-extracts only when the archive changed since the last extraction into `target`.
    A corrupt archive or an unsafe member raises `StoreError` naming the archive and the member.
    """
    archive = Path(archive)
    target = Path(target)
    checksum = _sha256(archive)
    marker = target / _UNARCHIVED_MARKER
    if marker.is_file() and marker.read_text(encoding="ascii").strip() == checksum:
        return
    staging = target.with_name(target.name + ".ggsim-extracting")
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_members(archive, members)
            bad = zf.testzip()
            if bad is not None:
                raise StoreError(f"ZIP archive {archive} is corrupt: member {bad!r} fails its CRC check")
            _rmtree(staging)
            staging.mkdir(parents=True)
            root = staging.resolve()
            for member in members:
                destination = (root / member.filename).resolve()
                if not _is_within(destination, root):
                    raise StoreError(
                        f"ZIP archive {archive}: member {member.filename!r} would be written outside {target}"
                    )
                if member.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(destination, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except zipfile.BadZipFile as exc:
        _rmtree(staging)
        raise StoreError(f"ZIP archive {archive} cannot be read: {exc}") from exc
    except (OSError, EOFError, zipfile.LargeZipFile, NotImplementedError) as exc:
        _rmtree(staging)
        raise StoreError(f"ZIP archive {archive} cannot be extracted: {exc}") from exc
    except StoreError:
        _rmtree(staging)
        raise
    _rmtree(target)
    os.replace(staging, target)
    (target / _UNARCHIVED_MARKER).write_text(checksum + "\n", encoding="ascii")


def _check_members(archive: Path, members: list[zipfile.ZipInfo]) -> None:
    for member in members:
        name = member.filename
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise StoreError(f"ZIP archive {archive}: member {name!r} has an absolute path; refusing to extract")
        if ".." in pure.parts:
            raise StoreError(f"ZIP archive {archive}: member {name!r} escapes the target folder with '..'")
        mode = member.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise StoreError(f"ZIP archive {archive}: member {name!r} is a symbolic link; refusing to extract")
