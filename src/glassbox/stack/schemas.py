"""Where the schemas that generated files are checked against come from.

Nothing here is downloaded at run time and no third-party schema is committed:

* the Compose specification: ``check-jsonschema`` (a ``stack`` dependency) vendors it
  as its builtin schema ``vendor.compose-spec``;
* Kubernetes core kinds (ConfigMap, Secret, ...): ``kubernetes-validate`` ships the
  OpenAPI-derived JSON schemas of each Kubernetes release;
* the Prometheus Operator's custom resources (ServiceMonitor, PrometheusRule,
  ScrapeConfig): the npm package ``@kubernetes-models/prometheus-operator`` ships
  validators generated from the operator's API types (the same source as its CRDs'
  OpenAPI v3 schemas), compiled to JavaScript. ``scripts/setup.sh`` installs it into
  ``.cache/schemas``; :func:`validate_prometheus_operator` runs it with Node.js. Where
  either is missing, :class:`SchemaUnavailableError` says so and how to install it, so
  a check never passes silently without its schema.
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

__all__ = [
    "KUBERNETES_VERSION",
    "PROMETHEUS_OPERATOR_ALPHA_API",
    "PROMETHEUS_OPERATOR_KINDS",
    "PROMETHEUS_OPERATOR_PACKAGE",
    "PROMETHEUS_OPERATOR_RESOURCES",
    "PROMETHEUS_OPERATOR_VERSION",
    "SCHEMA_DIR_ENV",
    "SchemaUnavailableError",
    "compose_spec_schema",
    "error_path",
    "prometheus_operator_models",
    "schema_dir",
    "validate_compose",
    "validate_kubernetes_core",
    "validate_prometheus_operator",
]

#: Kubernetes release whose schemas core kinds are checked against. kubernetes-validate
#: 1.30 (the oldest release glassbox accepts) ships it, and ConfigMap and Secret have
#: not changed since.
KUBERNETES_VERSION: Final = "1.30"

PROMETHEUS_OPERATOR_PACKAGE: Final = "@kubernetes-models/prometheus-operator"
#: Pinned in scripts/setup.sh too; generated from prometheus-operator v0.9x API types.
PROMETHEUS_OPERATOR_VERSION: Final = "6.0.0"
#: monitoring.coreos.com/v1 kinds the package has a validator for that glassbox uses.
PROMETHEUS_OPERATOR_KINDS: Final = frozenset(
    {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Probe"}
)
PROMETHEUS_OPERATOR_API: Final = "monitoring.coreos.com/v1"
PROMETHEUS_OPERATOR_ALPHA_API: Final = "monitoring.coreos.com/v1alpha1"
#: The kinds validated per apiVersion (ScrapeConfig is still v1alpha1 in the operator).
PROMETHEUS_OPERATOR_RESOURCES: Final = {
    PROMETHEUS_OPERATOR_API: PROMETHEUS_OPERATOR_KINDS,
    PROMETHEUS_OPERATOR_ALPHA_API: frozenset({"ScrapeConfig"}),
}

#: Environment variable naming the directory npm installed the schema packages into
#: (the directory holding ``node_modules``); default: ``.cache/schemas`` of the checkout.
SCHEMA_DIR_ENV: Final = "GLASSBOX_SCHEMA_DIR"
_CACHE_PARTS: Final = (".cache", "schemas")
_INSTALL_HINT: Final = (
    f"run scripts/setup.sh, or 'npm install --prefix .cache/schemas"
    f" {PROMETHEUS_OPERATOR_PACKAGE}@{PROMETHEUS_OPERATOR_VERSION}' and set"
    f" {SCHEMA_DIR_ENV} to that directory"
)
_NODE_TIMEOUT: Final = 120.0


class SchemaUnavailableError(RuntimeError):
    """A schema (or the runtime needed to apply it) is not installed on this machine."""


def error_path(parts: Sequence[str | int]) -> str:
    """``spec.endpoints[0].interval`` from ``["spec", "endpoints", 0, "interval"]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


# --------------------------------------------------------------------------- compose


@functools.cache
def compose_spec_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema as vendored by check-jsonschema."""
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
        "compose-spec.json"
    )
    try:
        data = json.loads(resource.read_bytes())
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise SchemaUnavailableError(
            "the Compose specification schema ships with check-jsonschema; install glassbox[stack]"
        ) from exc
    if not isinstance(data, dict):
        raise SchemaUnavailableError("check-jsonschema's compose-spec.json is not a schema")
    return data


@functools.cache
def _compose_validator() -> Any:
    # jsonschema ships no type information: keep its objects inside this module
    validators = importlib.import_module("jsonschema.validators")
    schema = compose_spec_schema()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_compose(document: Any) -> list[str]:
    """Problems of a parsed compose file against the Compose specification, sorted."""
    errors = _compose_validator().iter_errors(document)
    return sorted(f"{error_path(list(e.absolute_path))}: {e.message}" for e in errors)


# --------------------------------------------------------------------------- kubernetes


def validate_kubernetes_core(obj: Mapping[str, Any]) -> list[str]:
    """Problems of a core Kubernetes object against :data:`KUBERNETES_VERSION` (strict).

    Raises :class:`SchemaUnavailableError` when kubernetes-validate has no schema for the
    object's kind (a custom resource, for example).
    """
    try:
        module = importlib.import_module("kubernetes_validate")
        utils = importlib.import_module("kubernetes_validate.utils")
    except ModuleNotFoundError as exc:
        raise SchemaUnavailableError(
            "kubernetes-validate is not installed; install glassbox[stack]"
        ) from exc
    try:
        module.validate(dict(obj), KUBERNETES_VERSION, strict=True)
    except utils.SchemaNotFoundError as exc:
        raise SchemaUnavailableError(str(exc.message)) from None
    except utils.ValidationError as exc:
        return [f"{error_path(list(exc.path))}: {exc.message}"]
    return []


def schema_dir() -> Path | None:
    """The directory holding ``node_modules`` with the schema packages, if installed.

    ``$GLASSBOX_SCHEMA_DIR`` wins; otherwise ``.cache/schemas`` in the working directory,
    one of its parents, or the checkout this module was loaded from.
    """
    marker = Path("node_modules", *PROMETHEUS_OPERATOR_PACKAGE.split("/"), "package.json")
    explicit = os.environ.get(SCHEMA_DIR_ENV)
    if explicit:
        path = Path(explicit)
        return path if (path / marker).is_file() else None
    seen: set[Path] = set()
    cwd = Path.cwd().resolve()
    here = Path(__file__).resolve().parent
    for base in (cwd, *cwd.parents, *here.parents):
        if base in seen:
            continue
        seen.add(base)
        candidate = base.joinpath(*_CACHE_PARTS)
        if (candidate / marker).is_file():
            return candidate
    return None


def prometheus_operator_models() -> Path:
    """The installed ``@kubernetes-models/prometheus-operator`` package directory."""
    base = schema_dir()
    if base is None:
        where = os.environ.get(SCHEMA_DIR_ENV) or "/".join(_CACHE_PARTS)
        raise SchemaUnavailableError(
            f"the Prometheus Operator CRD schema ({PROMETHEUS_OPERATOR_PACKAGE}) is not"
            f" installed in {where}; {_INSTALL_HINT}"
        )
    return base.joinpath("node_modules", *PROMETHEUS_OPERATOR_PACKAGE.split("/"))


def _installed_version(package: Path) -> str:
    try:
        data = json.loads((package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unknown"
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else "unknown"


# Runs each object through the package's generated validator; prints one list of
# problems per object, as JSON, in input order.
_NODE_SCRIPT: Final = r"""
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";
const request = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const item of request.objects) {
  const url = pathToFileURL(`${request.package}/${item.api}/${item.kind}.js`);
  const mod = await import(url.href);
  const Model = mod[item.kind];
  try {
    new Model(item.object).validate();
    results.push([]);
  } catch (err) {
    if (Array.isArray(err.errors)) {
      results.push(err.errors.map((e) => ({
        path: e.instancePath || "",
        message: e.message || String(e.keyword),
      })));
    } else {
      results.push([{path: "", message: String(err && err.message ? err.message : err)}]);
    }
  }
}
process.stdout.write(JSON.stringify(results));
"""


def _pointer_parts(pointer: str) -> list[str | int]:
    parts: list[str | int] = []
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        parts.append(int(token) if token.isdigit() else token)
    return parts


def validate_prometheus_operator(objects: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Problems of each Prometheus Operator object (one list per object, in order).

    Every object must be of an apiVersion and kind in
    :data:`PROMETHEUS_OPERATOR_RESOURCES`. Raises :class:`SchemaUnavailableError` when
    the package or Node.js is missing.
    """
    for obj in objects:
        api, kind = str(obj.get("apiVersion")), obj.get("kind")
        if kind not in PROMETHEUS_OPERATOR_RESOURCES.get(api, frozenset()):
            known = "; ".join(f"{a} {sorted(k)}" for a, k in PROMETHEUS_OPERATOR_RESOURCES.items())
            raise ValueError(
                f"not a Prometheus Operator object glassbox validates ({known}): {api} {kind}"
            )
    if not objects:
        return []
    package = prometheus_operator_models()
    node = shutil.which("node")
    if node is None:
        raise SchemaUnavailableError(
            f"Node.js ('node') is needed to apply the Prometheus Operator CRD schema"
            f" ({PROMETHEUS_OPERATOR_PACKAGE}) and is not on PATH"
        )
    request = {
        "package": str(package),
        "objects": [
            {"api": obj["apiVersion"], "kind": obj["kind"], "object": dict(obj)} for obj in objects
        ],
    }
    try:
        proc = subprocess.run(
            [node, "--input-type=module", "--no-warnings", "-e", _NODE_SCRIPT],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=_NODE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SchemaUnavailableError(
            f"running the CRD validator with {node} failed: {exc}"
        ) from exc
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SchemaUnavailableError(
            f"the CRD validator ({PROMETHEUS_OPERATOR_PACKAGE}"
            f" {_installed_version(package)}) failed to run: {detail}; {_INSTALL_HINT}"
        )
    raw = json.loads(proc.stdout)
    results: list[list[str]] = []
    for problems in raw:
        lines = sorted(
            {f"{error_path(_pointer_parts(str(p['path'])))}: {p['message']}" for p in problems}
        )
        results.append(lines)
    return results
