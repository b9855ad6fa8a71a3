"""The Avro schemas, kept as ``.avsc`` data files rather than Python.

They are the wire contract other tools (Kafka consumers, schema registries,
analysts' notebooks) read directly, so they live as plain JSON in fastavro's
``<namespace>.<Name>.avsc`` layout. This package exists only so the files ship
inside the wheel and load through ``importlib.resources``; ``events.codec`` is
the only reader. ``history/`` keeps every earlier envelope version, fully
inlined, because a reader must recognise every writer schema ever used to
decode old log entries.
"""
