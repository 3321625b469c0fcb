"""Packaged YAML configuration: endpoints and example pipeline configs (see README)."""
