"""The running processes: the embedded processor loop (and, later, Faust agents,
the outbox relay, webhooks and replay), all driving ``consumers.pipeline``."""
