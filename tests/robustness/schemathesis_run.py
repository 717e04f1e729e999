"""Runs the schemathesis CLI against a live server and reads its JSON report.

Every check (``--checks all``: server errors, status codes, content types, headers and
bodies against the document, ignored auth, unsupported methods, negative data) in the
coverage and fuzzing phases. ``GLASSBOX_FUZZ_EXAMPLES`` raises the examples per operation;
``GLASSBOX_FUZZ_SEED`` replays a run (the seed is in the failure message).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.robustness.fuzzing import examples

#: schemathesis resolves ${NAME} in its config file from the environment.
_AUTH_SCHEME = '[auth.openapi.{name}]\n{kind} = "${{{variable}}}"\n'


@dataclass(frozen=True)
class Run:
    """One finished ``schemathesis run``."""

    returncode: int
    output: str
    report: dict[str, Any]
    seed: int

    @property
    def failures(self) -> str:
        """The failure section of the output, for an assertion message."""
        start = self.output.find("FAILURES")
        return f"seed {self.seed}:\n" + (self.output[start:] if start >= 0 else self.output)[-6000:]

    def check(self, operations: int) -> None:
        """Assert a clean run that tested all ``operations`` with its credentials used."""
        assert self.returncode == 0, self.failures
        assert self.report["operations"]["tested"] == operations, self.report["operations"]
        assert self.report["test_cases"]["generated"] >= operations, self.report["test_cases"]
        assert self.report["failures"] == [], self.failures
        warnings = self.report["warnings"]
        for kind in ("missing_auth", "unused_openapi_auth", "missing_test_data"):
            assert warnings.get(kind) in ([], None), (kind, warnings[kind])


def run_schemathesis(
    location: str,
    *,
    base_url: str | None,
    directory: Path,
    bearer: dict[str, str] | None = None,
    basic: dict[str, tuple[str, str]] | None = None,
    documented_5xx: dict[str, int] | None = None,
    path_values: dict[str, dict[str, str]] | None = None,
    default_examples: int = 30,
    timeout: float = 600,
) -> Run:
    """``schemathesis run location`` (a file or URL) against ``base_url``.

    ``bearer`` and ``basic`` give credentials per security scheme of the document;
    ``documented_5xx`` maps an operation tag to the one 5xx status its operations may
    answer by design (503 from a failing readiness check); ``path_values`` fixes the path
    parameters of an operation (by path) to ones that exist, so that its query parameters
    are fuzzed against a real dashboard, panel or trace instead of a 404."""
    env = {**os.environ}
    config = ""
    for index, (scheme, token) in enumerate(sorted((bearer or {}).items())):
        env[f"FUZZ_BEARER_{index}"] = token
        config += _AUTH_SCHEME.format(name=scheme, kind="bearer", variable=f"FUZZ_BEARER_{index}")
    for index, (scheme, (user, password)) in enumerate(sorted((basic or {}).items())):
        env[f"FUZZ_USER_{index}"], env[f"FUZZ_PASSWORD_{index}"] = user, password
        config += (
            f"[auth.openapi.{scheme}]\n"
            f'username = "${{FUZZ_USER_{index}}}"\npassword = "${{FUZZ_PASSWORD_{index}}}"\n'
        )
    for tag, status in sorted((documented_5xx or {}).items()):
        config += (
            f'[[operations]]\ninclude-tag = "{tag}"\n'
            "[operations.checks.not_a_server_error]\n"
            f'expected-statuses = ["2xx", "3xx", "4xx", "{status}"]\n'
        )
    for path, values in sorted((path_values or {}).items()):
        config += f"[[operations]]\ninclude-path = {json.dumps(path)}\n[operations.parameters]\n"
        config += "".join(f'"path.{k}" = {json.dumps(v)}\n' for k, v in sorted(values.items()))
    config_file = directory / "schemathesis.toml"
    config_file.write_text(config, encoding="utf-8")
    raw_seed = os.environ.get("GLASSBOX_FUZZ_SEED", "")
    seed = int(raw_seed) if raw_seed.isdecimal() else random.randrange(2**31)
    report = directory / "report.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file), "run",
        location, "--checks", "all", "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(examples(default_examples)), "--seed", str(seed),
        "--workers", "1", "--request-timeout", "10", "--no-color",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    if base_url is not None:
        command += ["--url", base_url]
    done = subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    loaded = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
    return Run(done.returncode, done.stdout + done.stderr, loaded, seed)
