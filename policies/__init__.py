"""Policy packs (package data): YAML rules evaluated by ``finetrail gate``."""
