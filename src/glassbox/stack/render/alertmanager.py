"""``alertmanager.yml``: routing by severity, inhibition, receivers, message templates.

Secrets are referenced as files (``secrets/<receiver>_<field>``, relative to
alertmanager.yml); whoever runs Alertmanager (compose, Kubernetes, ``glassbox up``)
puts each secret there from the environment variable or file the config names.

A receiver's own message (``[receivers.message]``) becomes a named template in
``templates/messages.tmpl`` (``glassbox.<receiver>.<field>``) that the receiver's
config calls, so ``amtool check-config`` parses it with the other templates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from glassbox.stack.config import Receiver, StackConfig
from glassbox.stack.matchers import matches_all, parse_matcher
from glassbox.stack.model import Bundle
from glassbox.stack.render._yaml import dump

__all__ = [
    "INBOX_OPSGENIE_KEY",
    "INBOX_ROUTING_KEY",
    "MESSAGES_FILE",
    "OPSGENIE_PRIORITY",
    "TEMPLATE",
    "InboxTarget",
    "alertmanager_yml",
    "expected_receivers",
    "inhibit_rules",
    "message_template",
    "message_templates",
    "receiver_secret",
    "render_alertmanager",
]

TEMPLATE = """\
{{/* glassbox notification templates: one title line, then one block per alert. */}}
{{ define "glassbox.title" -}}
[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] \
{{ .CommonLabels.alertname }}{{ if .CommonLabels.service }} ({{ .CommonLabels.service }})\
{{ end }}{{ if .CommonLabels.dependency }} ({{ .CommonLabels.dependency }}){{ end }}
{{- end }}

{{ define "glassbox.text" -}}
{{ range .Alerts -}}
{{ if eq .Status "firing" }}FIRING{{ else }}RESOLVED{{ end }} [{{ .Labels.severity }}] \
{{ .Annotations.summary }}
{{ .Annotations.description }}
{{ if .Annotations.runbook_url }}Runbook: {{ .Annotations.runbook_url }}{{ end }}
{{ end -}}
{{- end }}
"""

#: PagerDuty rejects an empty severity, which a group mixing severities would render.
PAGERDUTY_SEVERITY = (
    "{{ if .CommonLabels.severity }}{{ .CommonLabels.severity }}{{ else }}critical{{ end }}"
)
#: Opsgenie's priority from the severity; a group mixing severities pages as P1.
OPSGENIE_PRIORITY = (
    '{{ if eq .CommonLabels.severity "warning" }}P3'
    '{{ else if eq .CommonLabels.severity "info" }}P5{{ else }}P1{{ end }}'
)

#: Alerts that mean "the service is down": they mute the service's symptom alerts.
SERVICE_DOWN = ("ServiceDown", "ServiceAbsent")
SERVICE_SYMPTOMS = (
    "ServiceInstanceDown",
    "ServiceHighErrorRatio",
    "ServiceLatency.+",
    "ServiceSaturated",
    "SLOErrorBudgetBurn.+",
)
#: The receivers' own messages, beside glassbox.tmpl.
MESSAGES_FILE = "alertmanager/templates/messages.tmpl"
_DEFAULT_MESSAGE = {
    "title": "glassbox.title",
    "text": "glassbox.text",
    "subject": "glassbox.title",
    "body": "glassbox.text",
    "summary": "glassbox.title",
}


DEPENDENCY_DOWN = (
    "DependencyTargetDown",
    "PostgresDown",
    "RedisDown",
    "MongodbDown",
    "QdrantDown",
)


def receiver_secret(receiver: Receiver, field: str) -> str:
    """Where Alertmanager reads a receiver's secret, relative to alertmanager.yml."""
    return f"secrets/{receiver.name}_{field}"


@dataclass(frozen=True, slots=True)
class InboxTarget:
    """The local inbox that stands in for every receiver under ``glassbox up``."""

    http_url: str
    smtp_host: str
    smtp_port: int


#: A routing key of the length PagerDuty expects; the inbox accepts any.
INBOX_ROUTING_KEY = "glassboxinboxglassboxinbox000000"
#: Which alerts a notification carries, for the inbox (Slack ``callback_id``, an email
#: header): ``glassbox-alerts status=<status> severity=<severity> <alertname> ...``.
INBOX_ALERTS_TEMPLATE = (
    "glassbox-alerts status={{ .Status }} severity={{ .CommonLabels.severity }}"
    "{{ range .Alerts }} {{ .Labels.alertname }}{{ end }}"
)
#: The Opsgenie API key the inbox's receivers send; the inbox accepts any.
INBOX_OPSGENIE_KEY = "glassbox-inbox"


def message_template(receiver: Receiver, field: str) -> str | None:
    """The name of the template for one part of a receiver's message (None: no such part).

    The receiver's own ``message.<field>`` when set, else glassbox's default.
    """
    if receiver.message is not None and field in receiver.message.fields():
        return f"glassbox.{receiver.name}.{field}"
    return _DEFAULT_MESSAGE.get(field)


def _call(receiver: Receiver, field: str) -> str:
    name = message_template(receiver, field)
    assert name is not None
    return f'{{{{ template "{name}" . }}}}'


def _opsgenie(receiver: Receiver) -> dict[str, Any]:
    """The opsgenie_configs fields every Opsgenie receiver shares (not its key or URL)."""
    return {
        "send_resolved": receiver.send_resolved,
        "message": _call(receiver, "summary"),
        "description": _call(receiver, "text"),
        "priority": OPSGENIE_PRIORITY,
        "source": "glassbox",
    }


def message_templates(config: StackConfig) -> str | None:
    """``messages.tmpl``: one ``define`` per message field set in glassbox.toml."""
    blocks = []
    for receiver in config.receivers:
        if receiver.message is None:
            continue
        for field, text in receiver.message.fields().items():
            blocks.append(
                f'{{{{ define "glassbox.{receiver.name}.{field}" }}}}{text}{{{{ end }}}}\n'
            )
    if not blocks:
        return None
    header = (
        "{{/* The receivers' own messages from glassbox.toml ([receivers.message]);"
        " generated, do not edit. */}}\n"
    )
    return header + "\n".join(blocks)


def _html(receiver: Receiver) -> dict[str, str]:
    """An email receiver's own HTML body; without one, Alertmanager's default HTML."""
    if receiver.message is not None and receiver.message.html is not None:
        return {"html": _call(receiver, "html")}
    return {}


def _inbox_receiver(receiver: Receiver, inbox: InboxTarget) -> dict[str, Any]:
    """The receiver delivering to the inbox exactly as to the real service."""
    title = _call(receiver, "title")
    text = _call(receiver, "text")
    base = inbox.http_url.rstrip("/")
    out: dict[str, Any] = {"name": receiver.name}
    if receiver.kind == "slack":
        out["slack_configs"] = [
            {
                "api_url": f"{base}/slack/{receiver.name}",
                "send_resolved": receiver.send_resolved,
                "channel": receiver.channel or "#glassbox",
                "title": title,
                "text": text,
                # Slack shows no callback_id unless the message has buttons: it tells the
                # inbox which alerts a message is about, whatever the title template says
                "callback_id": INBOX_ALERTS_TEMPLATE,
            }
        ]
    elif receiver.kind == "pagerduty":
        out["pagerduty_configs"] = [
            {
                "url": f"{base}/pagerduty/{receiver.name}/v2/enqueue",
                "routing_key": INBOX_ROUTING_KEY,
                "send_resolved": receiver.send_resolved,
                "severity": PAGERDUTY_SEVERITY,
                "description": _call(receiver, "summary"),
            }
        ]
    elif receiver.kind == "email":
        out["email_configs"] = [
            {
                "to": receiver.to,
                "from": receiver.from_,
                "smarthost": f"{inbox.smtp_host}:{inbox.smtp_port}",
                "require_tls": False,
                "send_resolved": receiver.send_resolved,
                "headers": {
                    "Subject": _call(receiver, "subject"),
                    "X-Glassbox-Receiver": receiver.name,
                    "X-Glassbox-Alerts": INBOX_ALERTS_TEMPLATE,
                },
                "text": _call(receiver, "body"),
                **_html(receiver),
            }
        ]
    elif receiver.kind == "opsgenie":
        out["opsgenie_configs"] = [
            {
                "api_url": f"{base}/opsgenie/{receiver.name}/",
                "api_key": INBOX_OPSGENIE_KEY,
                **_opsgenie(receiver),
            }
        ]
    else:
        out["webhook_configs"] = [
            {"url": f"{base}/webhook/{receiver.name}", "send_resolved": receiver.send_resolved}
        ]
    return out


def _receiver(receiver: Receiver) -> dict[str, Any]:
    title = _call(receiver, "title")
    text = _call(receiver, "text")
    out: dict[str, Any] = {"name": receiver.name}
    if receiver.kind == "slack":
        slack: dict[str, Any] = {
            "api_url_file": receiver_secret(receiver, "api_url"),
            "send_resolved": receiver.send_resolved,
            "title": title,
            "text": text,
        }
        if receiver.channel:
            slack["channel"] = receiver.channel
        out["slack_configs"] = [slack]
    elif receiver.kind == "pagerduty":
        out["pagerduty_configs"] = [
            {
                "routing_key_file": receiver_secret(receiver, "routing_key"),
                "send_resolved": receiver.send_resolved,
                "severity": PAGERDUTY_SEVERITY,
                "description": _call(receiver, "summary"),
                "details": {
                    "firing": '{{ template "glassbox.text" . }}',
                    "service": "{{ .CommonLabels.service }}",
                    "runbook": "{{ .CommonAnnotations.runbook_url }}",
                },
            }
        ]
    elif receiver.kind == "email":
        email: dict[str, Any] = {
            "to": receiver.to,
            "from": receiver.from_,
            "smarthost": receiver.smarthost,
            "require_tls": receiver.require_tls,
            "send_resolved": receiver.send_resolved,
            "headers": {"Subject": _call(receiver, "subject")},
            "text": _call(receiver, "body"),
            **_html(receiver),
        }
        if receiver.auth_username:
            email["auth_username"] = receiver.auth_username
        if receiver.auth_password is not None:
            email["auth_password_file"] = receiver_secret(receiver, "auth_password")
        out["email_configs"] = [email]
    elif receiver.kind == "opsgenie":
        out["opsgenie_configs"] = [
            {"api_key_file": receiver_secret(receiver, "api_key"), **_opsgenie(receiver)}
        ]
    else:
        hook: dict[str, Any] = {"url": receiver.url, "send_resolved": receiver.send_resolved}
        if receiver.bearer_token is not None:
            hook["http_config"] = {
                "authorization": {"credentials_file": receiver_secret(receiver, "bearer_token")}
            }
        out["webhook_configs"] = [hook]
    return out


def _routes(config: StackConfig) -> list[dict[str, Any]]:
    """One Alertmanager route per (route, receiver); all but the last continue."""
    out = []
    for route in config.routing.routes:
        matchers = [m.text() for m in route.label_matchers()]
        for i, name in enumerate(route.receivers):
            last = i == len(route.receivers) - 1
            out.append({"receiver": name, "matchers": matchers, "continue": not last})
    return out


def expected_receivers(config: StackConfig, labels: dict[str, str]) -> list[str]:
    """Receivers an alert with these labels should reach, by the config's routing."""
    for route in config.routing.routes:
        if matches_all(route.label_matchers(), labels):
            return list(route.receivers)
    return [config.default_receiver]


def inhibit_rules(
    bundles: Sequence[Bundle], config: StackConfig | None = None
) -> list[dict[str, Any]]:
    """Critical mutes warning of the same alert; down mutes the symptoms.

    With ``config``, its ``[[routing.inhibit]]`` rules follow glassbox's own.
    """
    names = {alert.name for bundle in bundles for alert in bundle.alerts}
    rules: list[dict[str, Any]] = [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity=~"warning|info"'],
            "equal": ["alertname", "service"],
        }
    ]
    if names & set(SERVICE_DOWN):
        rules.append(
            {
                "source_matchers": [f'alertname=~"{"|".join(SERVICE_DOWN)}"'],
                "target_matchers": [f'alertname=~"{"|".join(SERVICE_SYMPTOMS)}"'],
                "equal": ["service"],
            }
        )
    if {"SLOErrorBudgetBurnFast", "SLOErrorBudgetBurnSlow"} <= names:
        # the page already says it: the slower ticket for the same SLO adds nothing
        rules.append(
            {
                "source_matchers": ['alertname="SLOErrorBudgetBurnFast"'],
                "target_matchers": ['alertname="SLOErrorBudgetBurnSlow"'],
                "equal": ["service", "slo"],
            }
        )
    down = [n for n in DEPENDENCY_DOWN if n in names]
    if down:
        rules.append(
            {
                "source_matchers": [f'alertname=~"{"|".join(down)}"'],
                "target_matchers": ['severity=~"warning|info"'],
                "equal": ["dependency"],
            }
        )
    for rule in config.routing.inhibit if config is not None else ():
        user: dict[str, Any] = {
            "source_matchers": [parse_matcher(m).text() for m in rule.source_matchers],
            "target_matchers": [parse_matcher(m).text() for m in rule.target_matchers],
        }
        if rule.equal:
            user["equal"] = list(rule.equal)
        rules.append(user)
    return rules


def alertmanager_yml(
    config: StackConfig, bundles: Sequence[Bundle], *, inbox: InboxTarget | None = None
) -> str:
    """The config; with ``inbox``, every receiver delivers to the local inbox instead."""
    r = config.routing
    doc: dict[str, Any] = {
        "global": {"resolve_timeout": "5m"},
        "templates": ["templates/*.tmpl"],
        "route": {
            "receiver": config.default_receiver,
            "group_by": list(r.group_by),
            "group_wait": r.group_wait,
            "group_interval": r.group_interval,
            "repeat_interval": r.repeat_interval,
            "routes": _routes(config),
        },
        "inhibit_rules": inhibit_rules(bundles, config),
        "receivers": [
            _receiver(x) if inbox is None else _inbox_receiver(x, inbox) for x in config.receivers
        ],
    }
    return dump(doc)


def render_alertmanager(config: StackConfig, bundles: Sequence[Bundle]) -> dict[str, str]:
    """``alertmanager.yml``, ``templates/glassbox.tmpl`` and any receiver's own messages."""
    files = {
        "alertmanager/alertmanager.yml": alertmanager_yml(config, bundles),
        "alertmanager/templates/glassbox.tmpl": TEMPLATE,
    }
    messages = message_templates(config)
    if messages is not None:
        files[MESSAGES_FILE] = messages
    return files
