"""Touchpoints: the typed model, ingest validation, the Avro codec and the log."""
