"""Regenerate governance/data/spdx_ids.txt (dev time only; finetrail never fetches it).

Sources, both PyPI packages installed with the dev/report extras:
- cyclonedx-python-lib's bundled ``spdx.SNAPSHOT.schema.json``: the SPDX License List
  identifiers (licences, exceptions, deprecated IDs) as a JSON-schema enum, with the list version;
- license-expression's bundled ScanCode LicenseDB index: which identifiers are exceptions and
  which are deprecated.

Output: one identifier per line, ``ID<TAB>license|exception<TAB>current|deprecated``, after a
header naming the SPDX list version. Usage: ``python scripts/generate_spdx_ids.py``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "governance" / "data" / "spdx_ids.txt"


def main() -> None:
    schema = json.loads(
        resources.files("cyclonedx.schema._res").joinpath("spdx.SNAPSHOT.schema.json").read_text()
    )
    version = schema.get("$comment", "unknown")
    index = json.loads(
        resources.files("license_expression")
        .joinpath("data/scancode-licensedb-index.json")
        .read_text()
    )
    exceptions: set[str] = set()
    deprecated: set[str] = set()
    for entry in index:
        key = entry.get("spdx_license_key") or ""
        if entry.get("is_exception"):
            exceptions.add(key)
        if entry.get("is_deprecated"):
            deprecated.add(key)
        deprecated.update(entry.get("other_spdx_license_keys") or [])
    names: dict[str, str] = schema.get("meta:enum", {})
    lines = [
        "# SPDX License List identifiers (finetrail package data; do not edit by hand).",
        f"# Source: cyclonedx-python-lib spdx.SNAPSHOT.schema.json ({version}); exception and",
        "# deprecation flags from license-expression's ScanCode LicenseDB index.",
        "# Regenerate with: python scripts/generate_spdx_ids.py",
    ]
    for spdx_id in sorted(schema["enum"], key=str.lower):
        # Deprecated "<licence>-with-<exception>" IDs are licences in the SPDX list.
        is_exc = "-with-" not in spdx_id and (
            "exception" in names.get(spdx_id, "").lower()
            or (spdx_id in exceptions and spdx_id not in deprecated)
        )
        kind = "exception" if is_exc else "license"
        status = "deprecated" if spdx_id in deprecated else "current"
        lines.append(f"{spdx_id}\t{kind}\t{status}")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines) - 4} identifiers to {OUT}")


if __name__ == "__main__":
    main()
