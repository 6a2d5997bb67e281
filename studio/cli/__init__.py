"""The `studio` command: one typer app, one way to open the container, a module per command group."""
