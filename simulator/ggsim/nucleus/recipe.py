"""Greengrass component recipes: loading, validation and the recipe model (`RecipeDocument`, `Recipe`).

Reference: spec components §1 (format, manifests, lifecycle, selections). Which manifest and Selections fit
a device is `ggsim.nucleus.platform`'s business; recipe variables are `ggsim.nucleus.variables`'s.
Keys are case-insensitive as in the nucleus; configuration values keep their keys as written.
Every problem raises `RecipeError` with the message `<file>: <key path>: <reason>`.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import semantic_version
import yaml

from ggsim.nucleus.platform import (
    detect_platform,
    filter_selections,
    platform_matches,
    platform_value_problem,
)
from ggsim.nucleus.recipe_yaml import RecipeYamlError, load_recipe_yaml
from ggsim.nucleus.resolver import VersionRangeError, parse_version_range
from ggsim.nucleus.skipif import SkipifError, parse_skipif

RECIPE_FORMAT_VERSION = "2020-01-25"
MAX_RECIPE_BYTES = 16_000
MAX_NAME_LENGTH = 128
MAX_VERSION_LENGTH = 64
MAX_VERSION_PART = 999_999
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9\-_.]+$")
COMPONENT_TYPES = ("aws.greengrass.generic", "aws.greengrass.lambda", "aws.greengrass.plugin", "aws.greengrass.nucleus")
LIFECYCLE_STEPS = ("bootstrap", "install", "startup", "run", "shutdown", "recover", "uninstall")
DEPENDENCY_TYPES = ("HARD", "SOFT")
UNARCHIVE_TYPES = ("NONE", "ZIP")
PERMISSION_LEVELS = ("NONE", "OWNER", "ALL")


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file, the key path and the reason."""

    def __init__(self, source: str, key_path: str, reason: str) -> None:
        self.source = source
        self.key_path = key_path
        self.reason = reason
        where = f"{source}: {key_path}" if key_path else source
        super().__init__(f"{where}: {reason}")


class PlatformMismatchError(RecipeError):
    """No manifest of the recipe matches the device's platform."""


@dataclass(frozen=True)
class Dependency:
    version_requirement: str
    dependency_type: str = "HARD"


@dataclass(frozen=True)
class LifecycleStep:
    script: str
    timeout: float | None = None
    requires_privilege: bool = False
    setenv: dict[str, str] = field(default_factory=dict)
    skipif: str | None = None


@dataclass(frozen=True)
class Artifact:
    uri: str
    filename: str
    unarchive: str = "NONE"
    read: str = "OWNER"
    execute: str = "NONE"
    digest: str | None = None
    algorithm: str | None = None


@dataclass(frozen=True)
class Manifest:
    index: int
    name: str | None
    platform: dict[str, str | None]
    selections: list[str]
    lifecycle: dict[str, Any] | None
    artifacts: list[Artifact]


@dataclass(frozen=True)
class RecipeMetadata:
    """What a recipe says of its component for every device: the keys outside its manifests and lifecycle."""

    name: str
    version: str
    description: str | None
    publisher: str | None
    component_type: str
    dependencies: dict[str, Dependency]
    default_configuration: dict[str, Any]
    source: str  # where the recipe came from, for messages
    source_path: Path | None
    raw: dict[str, Any]  # the parsed document

    @property
    def semver(self) -> semantic_version.Version:
        return semantic_version.Version(self.version)

    def metadata(self) -> dict[str, Any]:
        """The metadata fields by name (to build a `Recipe` from a `RecipeDocument`)."""
        return {f.name: getattr(self, f.name) for f in fields(RecipeMetadata)}


@dataclass(frozen=True)
class Recipe(RecipeMetadata):
    """A recipe for one device: its metadata and the lifecycle and artifacts of the manifest selected."""

    lifecycle: dict[str, LifecycleStep]
    lifecycle_setenv: dict[str, str]
    artifacts: list[Artifact]
    lifecycle_options: dict[str, Any] = field(default_factory=dict)
    manifest_index: int = 0
    manifest_platform: dict[str, str | None] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _jsonable(value: Any) -> Any:
    """YAML gives dates and non-string keys; a recipe is JSON, so make it JSON-shaped."""
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else scalar_text(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, _dt.date | _dt.datetime):
        return value.isoformat()
    return value


def scalar_text(value: Any) -> str:
    """A JSON scalar as text, as the nucleus writes it into an environment variable (``null``, ``true``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Checker:
    """Validation helpers bound to one recipe source (for error messages)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, reason: str) -> RecipeError:
        return RecipeError(self.source, path, reason)

    def mapping(self, value: Any, path: str, *, allow_none: bool = True) -> dict[str, Any]:
        if value is None and allow_none:
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping (object), got {_describe(value)}")
        return value

    def keys(self, value: dict[str, Any], path: str) -> dict[str, tuple[str, Any]]:
        """Lowercased key -> (key as written, value); two spellings of one key are an error."""
        out: dict[str, tuple[str, Any]] = {}
        for key, item in value.items():
            low = key.lower()
            if low in out:
                raise self.error(_join(path, key), f"duplicate key (also written as {out[low][0]!r}); keys are case-insensitive")
            out[low] = (key, item)
        return out

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"expected a string, got {_describe(value)}")
        return value

    def enum(self, value: Any, path: str, allowed: Sequence[str]) -> str:
        text = self.string(value, path)
        for option in allowed:
            if text.lower() == option.lower():
                return option
        raise self.error(path, f"{text!r} is not one of {', '.join(allowed)}")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {value!r}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# --------------------------------------------------------------------------- loading


def load_recipe_document(path: str | Path) -> RecipeDocument:
    """Read, parse and validate a recipe file (all manifests; no platform chosen yet)."""
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecipeError(source, "", f"cannot read the recipe file: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    if suffix == ".json":
        fmt = "json"
    elif suffix in (".yaml", ".yml"):
        fmt = "yaml"
    else:
        raise RecipeError(source, "", f"unknown recipe file extension {path.suffix!r}; expected .json, .yaml or .yml")
    return parse_recipe_bytes(data, source, fmt, source_path=path)


def load_recipe(path: str | Path, platform: Mapping[str, str] | None = None) -> Recipe:
    """Load a recipe file and select the manifest for `platform` (default: this host)."""
    return load_recipe_document(path).for_platform(platform)


def parse_recipe_bytes(
    data: bytes, source: str, fmt: str, *, source_path: Path | None = None, check_size: bool = True
) -> RecipeDocument:
    """Parse recipe text. `check_size=False` for recipes already accepted (the store re-serialises them)."""
    if check_size and len(data) > MAX_RECIPE_BYTES:
        raise RecipeError(
            source, "", f"the recipe is {len(data)} bytes; Greengrass accepts at most {MAX_RECIPE_BYTES} bytes"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(source, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if fmt == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(source, "", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    elif fmt == "yaml":
        try:
            doc = load_recipe_yaml(text)
        except RecipeYamlError as exc:
            raise RecipeError(source, "", str(exc)) from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise RecipeError(source, "", f"invalid YAML{where}: {problem}") from exc
    else:
        raise ValueError(f"unknown recipe format {fmt!r}; expected 'json' or 'yaml'")
    return parse_recipe_document(doc, source, source_path=source_path)


def parse_recipe_document(doc: Any, source: str, *, source_path: Path | None = None) -> RecipeDocument:
    """Validate a parsed recipe (dict) and return it with all its manifests."""
    check = _Checker(source)
    if not isinstance(doc, dict):
        raise check.error("", f"a recipe must be a mapping (object) at the top level, got {_describe(doc)}")
    doc = _jsonable(doc)
    top = check.keys(doc, "")

    def required(key: str) -> tuple[str, Any]:
        if key.lower() not in top:
            raise check.error(key, "missing (required)")
        return top[key.lower()]

    key, fmt = required("RecipeFormatVersion")
    if fmt != RECIPE_FORMAT_VERSION:
        raise check.error(key, f"unsupported recipe format version {fmt!r}; the only version is {RECIPE_FORMAT_VERSION!r}")

    key, name = required("ComponentName")
    name = check.string(name, key)
    _check_component_name(check, name, key)

    key, version = required("ComponentVersion")
    version = _check_version(check, version, key)

    description = _optional_string(check, top, "ComponentDescription")
    publisher = _optional_string(check, top, "ComponentPublisher")
    component_type = COMPONENT_TYPES[0]
    if "componenttype" in top and top["componenttype"][1] is not None:
        key, value = top["componenttype"]
        component_type = check.enum(value, key, COMPONENT_TYPES)

    default_configuration: dict[str, Any] = {}
    if "componentconfiguration" in top:
        key, value = top["componentconfiguration"]
        conf = check.keys(check.mapping(value, key), key)
        if "defaultconfiguration" in conf:
            dkey, dvalue = conf["defaultconfiguration"]
            default_configuration = check.mapping(dvalue, _join(key, dkey))

    dependencies: dict[str, Dependency] = {}
    if "componentdependencies" in top:
        key, value = top["componentdependencies"]
        for dep_name, spec in check.mapping(value, key).items():
            dep_path = _join(key, dep_name)
            _check_component_name(check, dep_name, dep_path)
            dependencies[dep_name] = _parse_dependency(check, spec, dep_path)

    if "manifests" not in top or not top["manifests"][1]:
        raise check.error(top.get("manifests", ("Manifests",))[0], "missing manifests: a recipe needs at least one manifest")
    mkey, mvalue = top["manifests"]
    if not isinstance(mvalue, list):
        raise check.error(mkey, f"expected a list of manifests, got {_describe(mvalue)}")
    manifests = [_parse_manifest(check, item, _join(mkey, i), i) for i, item in enumerate(mvalue)]

    global_lifecycle: dict[str, Any] = {}
    global_key = "Lifecycle"
    if "lifecycle" in top:
        global_key, value = top["lifecycle"]
        global_lifecycle = check.mapping(value, global_key)

    document = RecipeDocument(
        name=name,
        version=version,
        description=description,
        publisher=publisher,
        component_type=component_type,
        dependencies=dependencies,
        default_configuration=default_configuration,
        manifests=manifests,
        global_lifecycle=global_lifecycle,
        global_lifecycle_key=global_key,
        source=source,
        source_path=source_path,
        raw=doc,
    )
    # Validate every manifest's effective lifecycle now, so that errors surface at load time.
    for manifest in manifests:
        document.lifecycle_for(manifest)
    return document


@dataclass(frozen=True)
class RecipeDocument(RecipeMetadata):
    """A validated recipe with all its manifests; `for_platform` picks the one for a device."""

    manifests: list[Manifest]
    global_lifecycle: dict[str, Any]
    global_lifecycle_key: str

    def select_manifest(self, platform: Mapping[str, str]) -> Manifest | None:
        for manifest in self.manifests:
            if platform_matches(manifest.platform, platform):
                return manifest
        return None

    def lifecycle_for(self, manifest: Manifest) -> tuple[dict[str, LifecycleStep], dict[str, str], dict[str, Any]]:
        check = _Checker(self.source)
        if manifest.lifecycle:
            path = f"Manifests[{manifest.index}].Lifecycle"
            return _parse_lifecycle(check, manifest.lifecycle, path)
        selectors = {"all"}
        for other in self.manifests:
            selectors.update(s.lower() for s in other.selections)
        priority = [s.lower() for s in manifest.selections] + ["all"]
        filtered = filter_selections(self.global_lifecycle, priority, selectors)
        path = self.global_lifecycle_key
        if manifest.selections:
            path = f"{path} (with Selections {manifest.selections} of Manifests[{manifest.index}])"
        return _parse_lifecycle(check, filtered if isinstance(filtered, dict) else {}, path)

    def for_platform(self, platform: Mapping[str, str] | None = None) -> Recipe:
        device = dict(platform) if platform is not None else detect_platform()
        manifest = self.select_manifest(device)
        if manifest is None:
            shown = ", ".join(f"{k}={v}" for k, v in device.items())
            raise PlatformMismatchError(
                self.source,
                "Manifests",
                f"component {self.name} {self.version} does not claim platform compatibility with this device "
                f"({shown}); manifests declare {[m.platform for m in self.manifests]}",
            )
        steps, setenv, options = self.lifecycle_for(manifest)
        return Recipe(
            **self.metadata(),
            lifecycle=steps,
            lifecycle_setenv=setenv,
            artifacts=list(manifest.artifacts),
            lifecycle_options=options,
            manifest_index=manifest.index,
            manifest_platform=dict(manifest.platform),
        )


def parse_recipe(doc: Any, source: str, platform: Mapping[str, str] | None = None) -> Recipe:
    """Validate a parsed recipe and select the manifest for `platform` (default: this host)."""
    return parse_recipe_document(doc, source).for_platform(platform)


# --------------------------------------------------------------------------- parts


def _optional_string(check: _Checker, top: dict[str, tuple[str, Any]], key: str) -> str | None:
    if key.lower() not in top or top[key.lower()][1] is None:
        return None
    written, value = top[key.lower()]
    return check.string(value, written)


def _check_component_name(check: _Checker, name: Any, path: str) -> None:
    name = check.string(name, path)
    if not name:
        raise check.error(path, "a component name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise check.error(path, f"component name is {len(name)} characters; at most {MAX_NAME_LENGTH} allowed")
    if not NAME_PATTERN.match(name):
        raise check.error(path, f"component name {name!r} may contain only letters, digits, '-', '_' and '.'")


def version_problem(version: Any) -> str | None:
    """Why ``version`` cannot be a ComponentVersion, or None when it can (the build tool asks this too)."""
    if isinstance(version, int | float) and not isinstance(version, bool):
        return f"{version!r} is a number, not a version; write a quoted major.minor.patch string like \"1.0.0\""
    if not isinstance(version, str):
        return f"expected a string, got {_describe(version)}"
    if version.upper() == "NEXT_PATCH" or version.startswith("{"):
        return (f"{version!r} is a placeholder, not a version: build the component first (gdk component build "
                "writes the real version); a recipe with a placeholder version cannot be deployed")
    if len(version) > MAX_VERSION_LENGTH:
        return f"version is {len(version)} characters; at most {MAX_VERSION_LENGTH} allowed"
    try:
        parsed = semantic_version.Version(version)
    except ValueError as exc:
        return f"{version!r} is not a semantic version major.minor.patch[-prerelease][+build] ({exc})"
    for part_name, part in (("major", parsed.major), ("minor", parsed.minor), ("patch", parsed.patch)):
        if part > MAX_VERSION_PART:
            return f"{part_name} version {part} is larger than {MAX_VERSION_PART}"
    return None


def _check_version(check: _Checker, version: Any, path: str) -> str:
    problem = version_problem(version)
    if problem is not None:
        raise check.error(path, problem)
    return version


def _parse_dependency(check: _Checker, spec: Any, path: str) -> Dependency:
    fields = check.keys(check.mapping(spec, path, allow_none=False), path)
    if "versionrequirement" not in fields:
        raise check.error(_join(path, "VersionRequirement"), "missing (required)")
    rkey, requirement = fields["versionrequirement"]
    rpath = _join(path, rkey)
    if isinstance(requirement, int | float) and not isinstance(requirement, bool):
        requirement = str(requirement)
    requirement = check.string(requirement, rpath)
    try:
        parse_version_range(requirement)
    except VersionRangeError as exc:
        raise check.error(rpath, str(exc)) from exc
    dependency_type = "HARD"
    if "dependencytype" in fields and fields["dependencytype"][1] is not None:
        tkey, tvalue = fields["dependencytype"]
        dependency_type = check.enum(tvalue, _join(path, tkey), DEPENDENCY_TYPES)
    return Dependency(version_requirement=requirement, dependency_type=dependency_type)


def _parse_manifest(check: _Checker, value: Any, path: str, index: int) -> Manifest:
    fields = check.keys(check.mapping(value, path, allow_none=False), path)
    platform: dict[str, str | None] = {}
    if "platform" in fields:
        pkey, pvalue = fields["platform"]
        ppath = _join(path, pkey)
        for attr, want in check.mapping(pvalue, ppath).items():
            apath = _join(ppath, attr)
            if attr.lower() in ("os", "architecture"):  # the nucleus's own properties: case-insensitive
                attr = attr.lower()
            if want is not None:
                want = check.string(want, apath)
                problem = platform_value_problem(want)
                if problem is not None:
                    raise check.error(apath, problem)
            platform[attr] = want
    name = None
    if "name" in fields and fields["name"][1] is not None:
        name = check.string(fields["name"][1], _join(path, fields["name"][0]))
    selections: list[str] = []
    if "selections" in fields and fields["selections"][1] is not None:
        skey, svalue = fields["selections"]
        spath = _join(path, skey)
        if not isinstance(svalue, list):
            raise check.error(spath, f"expected a list of selection keys, got {_describe(svalue)}")
        selections = [check.string(s, _join(spath, i)) for i, s in enumerate(svalue)]
    lifecycle = None
    if "lifecycle" in fields:
        lkey, lvalue = fields["lifecycle"]
        lifecycle = check.mapping(lvalue, _join(path, lkey))
    artifacts: list[Artifact] = []
    if "artifacts" in fields and fields["artifacts"][1] is not None:
        akey, avalue = fields["artifacts"]
        apath = _join(path, akey)
        if not isinstance(avalue, list):
            raise check.error(apath, f"expected a list of artifacts, got {_describe(avalue)}")
        seen: dict[str, int] = {}
        for i, item in enumerate(avalue):
            artifact = _parse_artifact(check, item, _join(apath, i))
            if artifact.filename in seen:
                raise check.error(
                    _join(_join(apath, i), "Uri"),
                    f"file name {artifact.filename!r} is already used by artifact [{seen[artifact.filename]}]; "
                    "artifact file names must be unique in a manifest",
                )
            seen[artifact.filename] = i
            artifacts.append(artifact)
    return Manifest(index=index, name=name, platform=platform, selections=selections, lifecycle=lifecycle,
                    artifacts=artifacts)


def _parse_artifact(check: _Checker, value: Any, path: str) -> Artifact:
    fields = check.keys(check.mapping(value, path, allow_none=False), path)
    if "uri" not in fields:
        raise check.error(_join(path, "Uri"), "missing (required)")
    ukey, uri = fields["uri"]
    upath = _join(path, ukey)
    uri = check.string(uri, upath).strip()
    filename = artifact_filename(uri)
    if not filename:
        raise check.error(upath, f"URI {uri!r} has no file name (its last path segment is empty)")
    unarchive = "NONE"
    if "unarchive" in fields and fields["unarchive"][1] is not None:
        unarchive = check.enum(fields["unarchive"][1], _join(path, fields["unarchive"][0]), UNARCHIVE_TYPES)
    read, execute = "OWNER", "NONE"
    if "permission" in fields and fields["permission"][1] is not None:
        pkey, pvalue = fields["permission"]
        ppath = _join(path, pkey)
        perm = check.keys(check.mapping(pvalue, ppath), ppath)
        if "read" in perm and perm["read"][1] is not None:
            read = check.enum(perm["read"][1], _join(ppath, perm["read"][0]), PERMISSION_LEVELS)
        if "execute" in perm and perm["execute"][1] is not None:
            execute = check.enum(perm["execute"][1], _join(ppath, perm["execute"][0]), PERMISSION_LEVELS)
    digest = algorithm = None
    if "digest" in fields and fields["digest"][1] is not None:
        digest = check.string(fields["digest"][1], _join(path, fields["digest"][0]))
    if "algorithm" in fields and fields["algorithm"][1] is not None:
        algorithm = check.string(fields["algorithm"][1], _join(path, fields["algorithm"][0]))
    return Artifact(uri=uri, filename=filename, unarchive=unarchive, read=read, execute=execute, digest=digest,
                    algorithm=algorithm)


def artifact_filename(uri: str) -> str:
    """The file name of an artifact: the last path segment of its URI (query/fragment ignored)."""
    body = uri.split("?", 1)[0].split("#", 1)[0]
    if "://" in body:
        body = body.split("://", 1)[1]
    elif ":" in body:
        body = body.split(":", 1)[1]
    return body.rstrip().rsplit("/", 1)[-1]


def _parse_lifecycle(
    check: _Checker, lifecycle: Mapping[str, Any], path: str
) -> tuple[dict[str, LifecycleStep], dict[str, str], dict[str, Any]]:
    steps: dict[str, LifecycleStep] = {}
    setenv: dict[str, str] = {}
    options: dict[str, Any] = {}
    for key, (written, value) in check.keys(dict(lifecycle), path).items():
        step_path = _join(path, written)
        if key == "setenv":
            setenv = _parse_setenv(check, value, step_path)
        elif key in LIFECYCLE_STEPS:
            if value is None:
                continue
            steps[key] = _parse_step(check, value, step_path)
        else:
            options[key] = value
    return steps, setenv, options


def _parse_step(check: _Checker, value: Any, path: str) -> LifecycleStep:
    if isinstance(value, str):
        return LifecycleStep(script=value)
    if not isinstance(value, dict):
        raise check.error(path, f"a lifecycle step is a script string or an object with Script, got {_describe(value)}")
    fields = check.keys(value, path)
    if "script" not in fields or fields["script"][1] is None:
        raise check.error(_join(path, "Script"), "missing: a lifecycle step object needs a Script")
    script = check.string(fields["script"][1], _join(path, fields["script"][0]))
    timeout = None
    if "timeout" in fields and fields["timeout"][1] is not None:
        tkey, tvalue = fields["timeout"]
        timeout = _parse_timeout(check, tvalue, _join(path, tkey))
    privileged = False
    if "requiresprivilege" in fields and fields["requiresprivilege"][1] is not None:
        rkey, rvalue = fields["requiresprivilege"]
        privileged = _parse_bool(check, rvalue, _join(path, rkey))
    skipif = None
    if "skipif" in fields and fields["skipif"][1] is not None:
        skey, svalue = fields["skipif"]
        skipif = check.string(svalue, _join(path, skey))  # parse_skipif trims as Java does
        try:
            parse_skipif(skipif)
        except SkipifError:
            raise check.error(
                _join(path, skey), f"{skipif!r} is not 'onpath <executable>' or 'exists <file>' (optionally after '!')"
            ) from None
    setenv: dict[str, str] = {}
    if "setenv" in fields:
        ekey, evalue = fields["setenv"]
        setenv = _parse_setenv(check, evalue, _join(path, ekey))
    return LifecycleStep(script=script, timeout=timeout, requires_privilege=privileged, setenv=setenv, skipif=skipif)


def _parse_timeout(check: _Checker, value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise check.error(path, f"expected a number of seconds, got {_describe(value)}")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise check.error(path, f"expected a number of seconds, got {_describe(value)}") from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise check.error(path, f"expected a number of seconds, got {_describe(value)}")
    if not number > 0 or number != number or number == float("inf"):
        raise check.error(path, f"a timeout must be a positive number of seconds, got {value!r}")
    return number


def _parse_bool(check: _Checker, value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise check.error(path, f"expected true or false, got {_describe(value)}")


def _parse_setenv(check: _Checker, value: Any, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, item in check.mapping(value, path).items():
        if isinstance(item, dict | list):
            raise check.error(_join(path, key), f"an environment value must be a string, number or boolean, got {_describe(item)}")
        out[key] = "" if item is None else scalar_text(item)
    return out


