"""Adapters for the ``Log`` port and the dead-letter store."""
