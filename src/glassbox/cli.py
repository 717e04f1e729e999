"""The ``glassbox`` command."""

from __future__ import annotations

from pathlib import Path

import typer

from glassbox._version import __version__

app = typer.Typer(
    name="glassbox",
    help="Observability for Python web services: metrics, health, logs, traces, and the stack.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"glassbox {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """glassbox command line."""


stack_app = typer.Typer(
    help="The monitoring stack as code: build and verify it from glassbox.toml.",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")

CONFIG_OPTION = typer.Option(
    Path("glassbox.toml"), "--config", "-c", help="The stack's config file."
)
OUTPUT_OPTION = typer.Option(
    None, "--output", "-o", help="Output directory (default: 'output' in the config)."
)


OPENAPI_OUTPUT = typer.Option(None, "--output", "-o", help="Write here, not to stdout.")
INIT_PATH = typer.Argument(Path("glassbox.toml"), help="Where to write the starter.")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _load(config: Path) -> object:
    from glassbox.exceptions import ConfigurationError
    from glassbox.stack.config import load_config

    try:
        return load_config(config)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None


def _output(config_path: Path, loaded: object, output: Path | None) -> Path:
    from glassbox.stack.config import StackConfig

    assert isinstance(loaded, StackConfig)
    if output is not None:
        return output
    out = Path(loaded.output)
    return out if out.is_absolute() else config_path.parent / out


@app.command()
def demo(
    duration: float = typer.Option(75.0, min=30, help="Seconds the fault timeline runs."),
    shop: bool = typer.Option(False, "--shop", help="Only serve the demo shop, no stack."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port of the shop with --shop."),
) -> None:
    """The whole loop: traffic, faults, alerts, notifications, in about a minute."""
    if shop:
        import uvicorn

        from glassbox.demo.app import create_app

        typer.echo(
            f"glassbox demo shop on http://127.0.0.1:{port}\n"
            f"  curl http://127.0.0.1:{port}/api/items/42\n"
            f"  curl http://127.0.0.1:{port}/metrics\n"
            "Ctrl-C stops it."
        )
        uvicorn.run(create_app(), host="127.0.0.1", port=port, log_level="warning")
        return
    from glassbox.demo.run import run_demo
    from glassbox.exceptions import ConfigurationError

    try:
        results = run_demo(duration, say=typer.echo)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None
    if not any(r.notified for r in results):
        raise _fail("no notification arrived; see the lines above")


@app.command()
def up(
    config: Path = CONFIG_OPTION,
    real_receivers: bool = typer.Option(
        False, "--real-receivers", help="Deliver to the real Slack/PagerDuty/email/webhooks."
    ),
    prometheus_port: int = typer.Option(9090, help="Prometheus port on 127.0.0.1 (0: any)."),
    alertmanager_port: int = typer.Option(9093, help="Alertmanager port (0: any)."),
    inbox_port: int = typer.Option(9095, help="Notification inbox HTTP port (0: any)."),
    smtp_port: int = typer.Option(2525, help="Notification inbox SMTP port (0: any)."),
    console_port: int = typer.Option(
        9096, help="Console and OTLP/HTTP (logs, traces) port (0: any)."
    ),
) -> None:
    """Run Prometheus, Alertmanager and the notification inbox on 127.0.0.1."""
    import signal
    import threading

    from glassbox.exceptions import ConfigurationError
    from glassbox.local.stack import LocalPorts, LocalStack
    from glassbox.local.supervisor import SupervisorError

    stack = LocalStack(
        config,
        ports=LocalPorts(prometheus_port, alertmanager_port, inbox_port, smtp_port, console_port),
        real_receivers=real_receivers,
        on_event=lambda name, message: typer.echo(f"{name}: {message}"),
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        stack.start()
    except (ConfigurationError, SupervisorError, OSError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"Prometheus    {stack.prometheus_url}")
    typer.echo(f"Alertmanager  {stack.alertmanager_url}")
    if stack.inbox is not None:
        typer.echo(f"inbox         {stack.inbox.http_url}/api/deliveries")
    if stack.console is not None:
        typer.echo(f"console       {stack.console.url}   (OTLP/HTTP: {stack.console.url}/v1/...)")
    typer.echo(f"data in {stack.state}; Ctrl-C stops everything")
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        typer.echo("stopping ...")
        stack.stop()


@app.command()
def init(
    path: Path = INIT_PATH,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starter glassbox.toml."""
    from importlib.resources import files

    if path.exists() and not force:
        raise _fail(f"{path} exists; use --force to overwrite it")
    text = files("glassbox.stack").joinpath("starter.toml").read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {path}; edit it, then run: glassbox stack build -c {path}")


@stack_app.command("build")
def stack_build(
    config: Path = CONFIG_OPTION,
    output: Path | None = OUTPUT_OPTION,
    force: bool = typer.Option(False, "--force", help="Overwrite hand-edited generated files."),
) -> None:
    """Write the monitoring stack (Prometheus, Alertmanager, Grafana, Loki, ...)."""
    from glassbox.exceptions import ConfigurationError
    from glassbox.stack.build import render_stack, write_stack
    from glassbox.stack.config import StackConfig

    loaded = _load(config)
    assert isinstance(loaded, StackConfig)
    directory = _output(config, loaded, output)
    try:
        result = write_stack(render_stack(loaded), directory, force=force)
    except ConfigurationError as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"wrote {result.written} files to {result.directory}"
        f" ({len(result.changed)} changed, {len(result.removed)} removed)"
    )
    typer.echo(f"next: glassbox stack verify -c {config}")


@stack_app.command("verify")
def stack_verify(
    config: Path = CONFIG_OPTION,
    output: Path | None = OUTPUT_OPTION,
) -> None:
    """Check the built stack with promtool, amtool, rule tests, lint and schemas."""
    from rich.console import Console

    from glassbox.stack.config import StackConfig
    from glassbox.stack.verify import Step, verify_stack

    loaded = _load(config)
    assert isinstance(loaded, StackConfig)
    directory = _output(config, loaded, output)
    console = Console(stderr=False, highlight=False)

    def show(step: Step) -> None:
        mark = "[green]ok[/green]  " if step.ok else "[red]FAIL[/red]"
        detail = f" [dim]({step.detail})[/dim]" if step.detail else ""
        console.print(f"{mark} {step.name}{detail}")
        for problem in step.problems:
            console.print(f"      {problem}", markup=False, soft_wrap=True)
        for warning in step.warnings:
            console.print(f"      warning: {warning}", style="yellow", markup=False, soft_wrap=True)

    with console.status("verifying the stack ..."):
        steps = verify_stack(loaded, directory, progress=show)
    failed = [s for s in steps if not s.ok]
    if failed:
        console.print(f"[red]{len(failed)} of {len(steps)} checks failed[/red]")
        raise typer.Exit(code=1)
    console.print(f"[green]all {len(steps)} checks passed[/green]")


@app.command()
def openapi(
    what: str = typer.Argument(
        "service", help="service: the health and metrics endpoints; console: the console API."
    ),
    output: Path | None = OPENAPI_OUTPUT,
) -> None:
    """Print the OpenAPI 3.1 document of glassbox's endpoints (for fuzzers, API gateways).

    ``service`` follows the GLASSBOX_* environment (prefix, paths, protection) as
    instrument() would; secrets never appear in it."""
    import json

    from glassbox.exceptions import ConfigurationError

    if what == "service":
        from glassbox.openapi import service_document

        try:
            document = service_document()
        except ConfigurationError as exc:
            raise _fail(str(exc)) from None
    elif what == "console":
        from glassbox.console.openapi import console_document

        document = console_document()
    else:
        raise _fail(f"openapi: {what!r} is neither 'service' nor 'console'")
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    from glassbox._files import write_atomic

    try:
        write_atomic(output, text)
    except OSError as exc:
        raise _fail(f"openapi: {exc.strerror}") from None
    typer.echo(f"wrote {output}", err=True)


def main() -> None:
    app()
