"""``aicp verify`` (placeholder until the runner lands)."""

import typer

app = typer.Typer(help="Verify a cluster against Kubernetes AI Conformance.")


@app.callback(invoke_without_command=True)
def verify() -> None:
    """Verify a cluster against Kubernetes AI Conformance."""
