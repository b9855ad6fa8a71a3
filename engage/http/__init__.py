"""The HTTP API and dashboard (``engage serve``): a thin composition root over
the Engine's ports, like the CLI."""
