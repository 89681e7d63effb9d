"""Reports layer: renders evidence into documentation packs, exports and the analyst dossier."""
