"""Adapters for the profile store port."""
