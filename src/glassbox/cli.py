"""The ``glassbox`` command."""

from __future__ import annotations

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


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to bind."),
) -> None:
    """Run the instrumented demo service; curl it and read /metrics."""
    import uvicorn

    from glassbox.demo.app import create_app

    typer.echo(
        f"glassbox demo shop on http://{host}:{port}\n"
        f"  curl http://{host}:{port}/api/items/42\n"
        f"  curl -X POST 'http://{host}:{port}/api/orders?items=3'\n"
        f"  curl http://{host}:{port}/metrics\n"
        "Ctrl-C stops it."
    )
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


def main() -> None:
    app()
