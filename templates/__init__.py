"""Jinja2 templates (package data) for the documentation packs and the dossier."""
