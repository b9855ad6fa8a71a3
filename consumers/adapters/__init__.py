"""Adapters of the ports declared in ``consumers.ports``."""
