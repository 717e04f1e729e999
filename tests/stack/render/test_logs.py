"""Loki, Alloy and Tempo configuration.

No Loki 3, Alloy or Tempo binary is installable here (Debian's ``loki`` is 2.4, too old
to judge a Loki 3 configuration), so these tests check what the files must say; the
keys themselves were checked against the sources of the pinned releases (see
glassbox.stack.render.logs).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from glassbox.stack.config import parse_config
from glassbox.stack.render.logs import (
    ALLOY_IMAGE,
    JAEGER_IMAGE,
    LOKI_IMAGE,
    TEMPO_IMAGE,
    go_duration,
    loki_retention,
    render_logs,
    trace_retention,
)
from tests.stack.render.test_compose import STACK, assert_no_planted_secret, stack_config

ROOT = Path(__file__).resolve().parents[3]

#: Top-level keys of Loki v3.4.2's config struct (pkg/loki/loki.go) that we may use.
LOKI_TOP = {
    "auth_enabled",
    "server",
    "common",
    "schema_config",
    "limits_config",
    "compactor",
    "ruler",
    "analytics",
}
#: Sections of an OpenTelemetry Collector config, which Jaeger v2's is.
COLLECTOR_TOP = {"service", "extensions", "receivers", "processors", "exporters"}
#: Top-level keys of Tempo v2.7.2's config struct (cmd/tempo/app/config.go) we may use.
TEMPO_TOP = {
    "stream_over_http_enabled",
    "server",
    "distributor",
    "compactor",
    "storage",
    "usage_report",
}


@pytest.fixture
def files(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return render_logs(stack_config(monkeypatch))


def _yaml(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def test_images_are_pinned() -> None:
    assert LOKI_IMAGE == "grafana/loki:3.4.2"
    assert ALLOY_IMAGE == "grafana/alloy:v1.7.5"
    assert TEMPO_IMAGE == "grafana/tempo:2.7.2"
    assert JAEGER_IMAGE == "jaegertracing/jaeger:2.19.0"


def test_files_and_determinism(monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> None:
    assert sorted(files) == ["alloy/config.alloy", "loki/loki.yml", "tempo/tempo.yml"]
    assert render_logs(stack_config(monkeypatch)) == files
    assert_no_planted_secret(files)


def test_loki_single_binary_tsdb_v13_with_retention(files: dict[str, str]) -> None:
    loki = _yaml(files["loki/loki.yml"])
    assert set(loki) <= LOKI_TOP
    assert loki["auth_enabled"] is False
    assert loki["server"]["http_listen_port"] == 3100
    assert loki["common"]["replication_factor"] == 1
    assert loki["common"]["ring"]["kvstore"]["store"] == "inmemory"
    [period] = loki["schema_config"]["configs"]
    assert (period["store"], period["schema"], period["object_store"]) == (
        "tsdb",
        "v13",
        "filesystem",
    )
    assert period["index"] == {"prefix": "index_", "period": "24h"}
    datetime.strptime(period["from"], "%Y-%m-%d")  # a string, not a YAML date
    limits = loki["limits_config"]
    assert limits["retention_period"] == "30d"  # Prometheus' retention_time
    assert limits["allow_structured_metadata"] is True
    compactor = loki["compactor"]
    assert compactor["retention_enabled"] is True
    # Loki 3 refuses retention without a delete-request store
    assert compactor["delete_request_store"] == "filesystem"
    assert loki["analytics"] == {"reporting_enabled": False}


def test_loki_retention_is_at_least_a_day() -> None:
    short = parse_config({**STACK, "prometheus": {"retention_time": "12h"}})
    assert loki_retention(short) == "24h"
    long = parse_config({**STACK, "prometheus": {"retention_time": "2w"}})
    assert loki_retention(long) == "2w"


def test_tempo_listens_for_otlp_on_every_interface(files: dict[str, str]) -> None:
    tempo = _yaml(files["tempo/tempo.yml"])
    assert set(tempo) <= TEMPO_TOP
    protocols = tempo["distributor"]["receivers"]["otlp"]["protocols"]
    # Tempo 2.7 defaults to localhost, unreachable from Alloy's container
    assert protocols == {
        "grpc": {"endpoint": "0.0.0.0:4317"},
        "http": {"endpoint": "0.0.0.0:4318"},
    }
    assert tempo["server"]["http_listen_port"] == 3200
    trace = tempo["storage"]["trace"]
    assert trace["backend"] == "local"
    assert trace["wal"]["path"].startswith("/var/tempo/")
    assert trace["local"]["path"].startswith("/var/tempo/")
    # Go's time.ParseDuration: no "d"
    assert tempo["compactor"]["compaction"]["block_retention"] == "720h"
    assert "metrics_generator" not in tempo


def test_logs_and_traces_keep_their_own_retention() -> None:
    both = parse_config({**STACK, "logs": {"retention": "7d"}, "tracing": {"retention": "3d"}})
    assert (loki_retention(both), trace_retention(both)) == ("7d", "3d")
    files = render_logs(both)
    assert _yaml(files["loki/loki.yml"])["limits_config"]["retention_period"] == "7d"
    tempo = _yaml(files["tempo/tempo.yml"])
    assert tempo["compactor"]["compaction"]["block_retention"] == "72h"
    # unset: Prometheus' retention, as before; Loki's still at least a day
    assert trace_retention(parse_config(STACK)) == "30d"
    short = parse_config({**STACK, "logs": {"retention": "6h"}})
    assert loki_retention(short) == "24h"


def test_jaeger_v2_stores_traces_in_badger_for_the_retention() -> None:
    config = parse_config({**STACK, "tracing": {"backend": "jaeger", "retention": "3d"}})
    files = render_logs(config)
    assert sorted(files) == ["alloy/config.alloy", "jaeger/jaeger.yml", "loki/loki.yml"]
    jaeger = _yaml(files["jaeger/jaeger.yml"])
    assert set(jaeger) == COLLECTOR_TOP
    pipeline = jaeger["service"]["pipelines"]["traces"]
    assert pipeline == {
        "receivers": ["otlp"],
        "processors": ["batch"],
        "exporters": ["jaeger_storage_exporter"],
    }
    # every component a pipeline or the service names is configured, and back
    assert set(jaeger["service"]["extensions"]) == set(jaeger["extensions"])
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) == set(jaeger[kind])
    ((name, backend),) = jaeger["extensions"]["jaeger_storage"]["backends"].items()
    badger = backend["badger"]
    assert badger["ephemeral"] is False
    assert badger["ttl"] == {"spans": "72h"}  # Go's time.ParseDuration: no "d"
    assert badger["directories"]["keys"].startswith("/tmp/jaeger/")
    query = jaeger["extensions"]["jaeger_query"]
    assert query["storage"] == {"traces": name}
    assert query["http"] == {"endpoint": "0.0.0.0:16686"}
    assert jaeger["exporters"]["jaeger_storage_exporter"] == {"trace_storage": name}
    assert jaeger["receivers"]["otlp"]["protocols"] == {
        "grpc": {"endpoint": "0.0.0.0:4317"},
        "http": {"endpoint": "0.0.0.0:4318"},
    }
    components = _alloy_components(files["alloy/config.alloy"])
    assert '"http://jaeger:4318"' in components["otelcol.exporter.otlphttp.jaeger"]
    assert "otelcol.exporter.otlphttp.tempo" not in components
    batch = components["otelcol.processor.batch.default"]
    assert "otelcol.exporter.otlphttp.jaeger.input" in batch


@pytest.mark.parametrize(
    ("prometheus", "go"),
    [("15d", "360h"), ("1h30m", "1h30m"), ("90s", "1m30s"), ("1w", "168h"), ("500ms", "500ms")],
)
def test_go_duration(prometheus: str, go: str) -> None:
    assert go_duration(prometheus) == go
    assert re.fullmatch(r"(\d+h)?(\d+m)?(\d+s)?(\d+ms)?", go)


# --------------------------------------------------------------------------- Alloy

_BLOCK = re.compile(r'^([a-z_]+(?:\.[a-z_]+)+) "([a-z_]+)" \{$', re.MULTILINE)
#: A component export used as a value: ``= loki.process.glassbox.receiver`` or in a list.
_REFERENCE = re.compile(r"[=\[,]\s*((?:discovery|loki|local|otelcol)\.[a-z_.]+)\.([a-z_]+)\b")


def _alloy_components(text: str) -> dict[str, str]:
    """``{"loki.process.glassbox": body}`` for each top-level component block."""
    out = {}
    for match in _BLOCK.finditer(text):
        depth, end = 0, match.end() - 1
        while True:
            if text[end] == "{":
                depth += 1
            elif text[end] == "}":
                depth -= 1
                if depth == 0:
                    break
            end += 1
        out[f"{match.group(1)}.{match.group(2)}"] = text[match.end() : end]
    return out


def _strip_comments_and_strings(text: str) -> str:
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def test_alloy_config_is_well_formed_and_wired(files: dict[str, str]) -> None:
    text = files["alloy/config.alloy"]
    code = _strip_comments_and_strings(text)
    assert code.count("{") == code.count("}")
    components = _alloy_components(text)
    assert set(components) == {
        "discovery.docker.containers",
        "discovery.relabel.containers",
        "loki.source.docker.containers",
        "local.file_match.glassbox",
        "discovery.relabel.glassbox_files",
        "loki.source.file.glassbox",
        "loki.process.glassbox",
        "loki.write.loki",
        "otelcol.receiver.otlp.default",
        "otelcol.processor.batch.default",
        "otelcol.exporter.otlphttp.tempo",
    }
    # every reference names a component defined here
    references = _REFERENCE.findall(code)
    assert len(references) >= 8
    for ref, _export in references:
        assert ref in components, ref
    assert "promtail" not in text.lower()
    assert "/var/log/glassbox/*.log" in components["local.file_match.glassbox"]
    assert "unix:///var/run/docker.sock" in components["loki.source.docker.containers"]
    assert '"http://loki:3100/loki/api/v1/push"' in components["loki.write.loki"]
    assert '"http://tempo:4318"' in components["otelcol.exporter.otlphttp.tempo"]
    otlp = components["otelcol.receiver.otlp.default"]
    assert '"0.0.0.0:4317"' in otlp
    assert '"0.0.0.0:4318"' in otlp


def _stage_map(body: str, stage: str, attribute: str) -> dict[str, str]:
    match = re.search(rf"stage\.{stage} \{{\s*{attribute} = \{{(.*?)\}}", body, re.DOTALL)
    assert match, stage
    pairs = re.findall(r'(\w+)\s*=\s*"([^"]*)"', match.group(1))
    return dict(pairs)


def test_only_low_cardinality_labels(files: dict[str, str]) -> None:
    body = _alloy_components(files["alloy/config.alloy"])["loki.process.glassbox"]
    assert set(_stage_map(body, "labels", "values")) == {"service", "level", "env"}
    assert set(_stage_map(body, "structured_metadata", "values")) == {
        "trace_id",
        "span_id",
        "request_id",
    }
    keep = re.search(r"stage\.label_keep \{\s*values = \[(.*?)\]", body, re.DOTALL)
    assert keep is not None
    assert json.loads(f"[{keep.group(1)}]") == ["service", "level", "env"]
    timestamp = re.search(r"stage\.timestamp \{(.*?)\}", body, re.DOTALL)
    assert timestamp is not None
    assert 'source            = "timestamp"' in timestamp.group(1)
    assert 'action_on_failure = "skip"' in timestamp.group(1)
    # stages run in order: parse, timestamp, labels, metadata, then drop the rest
    order = [body.index(f"stage.{s} ") for s in ("json", "timestamp", "labels", "label_keep")]
    assert order == sorted(order)


def test_the_pipeline_reads_the_fields_glassbox_writes(files: dict[str, str]) -> None:
    """A real glassbox log line carries every field the pipeline extracts."""
    script = (
        "from glassbox.logs import configure_logging, get_logger\n"
        "configure_logging(service='checkout-api', version='1.2.3', env='production',"
        " fmt='json')\n"
        "get_logger('shop').info('order placed', order=42)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    line = json.loads(out.strip().splitlines()[-1])
    body = _alloy_components(files["alloy/config.alloy"])["loki.process.glassbox"]
    expressions = _stage_map(body, "json", "expressions")
    for field in ("timestamp", "service", "level", "env"):
        assert expressions[field] == field
        assert field in line, field
    assert line["service"] == "checkout-api"
    # RFC3339Nano as Go parses it: fractional seconds and Z
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", line["timestamp"]
    )
    for field in ("trace_id", "span_id", "request_id"):
        assert expressions[field] == field


def test_alloy_strings_are_escaped() -> None:
    config = parse_config({**STACK, "environment": 'eu "west"\\1'})
    text = render_logs(config)["alloy/config.alloy"]
    literal = json.dumps('eu "west"\\1')
    assert f'"env" = {literal}' in text
    code = _strip_comments_and_strings(text)
    assert code.count("{") == code.count("}")
