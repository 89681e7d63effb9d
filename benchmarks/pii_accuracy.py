"""Per-entity precision and recall of each PII detector on the labelled evaluation set.

    .venv/bin/python benchmarks/pii_accuracy.py [--out docs/pii-accuracy.md]

Detectors measured side by side on the same 800 records (``governance/pii/data/pii_eval.jsonl``,
made by ``scripts/make_pii_eval_set.py``, independent of the demo's Faker generator):

- ``patterns``: the one PII pattern table (what the extraction probe counts and reports mask);
- ``presidio``: the scan engine as ``finetrail data register --scan`` runs it (no spaCy model:
  PERSON from the Faker deny-list); with ``--spacy-model NAME_OR_PATH`` also that engine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from finetrail.governance.pii import patterns
from finetrail.governance.pii.evaluate import eval_set_digest, format_table, load_eval_set, score


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--spacy-model", default=None)
    args = ap.parse_args(argv)
    records = load_eval_set()
    results = {
        "patterns": score(records, lambda t: [(m.entity, m.start, m.end) for m in patterns.find(t)])
    }
    from finetrail.governance.pii.config import ScanConfig
    from finetrail.governance.pii.engine import build_engine

    configs = {"presidio (no NER; Faker name list)": ScanConfig(workers=1)}
    if args.spacy_model:
        configs[f"presidio + spaCy {args.spacy_model}"] = ScanConfig(
            workers=1, spacy_model=args.spacy_model
        )
    for name, cfg in configs.items():
        engine = build_engine(cfg)
        results[name] = score(
            records, lambda t, e=engine: [(f[0], f[1], f[2]) for f in e.findings(t)[0]]
        )
    text = (
        "# PII detection: measured precision and recall\n\n"
        f"Evaluation set: {len(records)} records, sha256 `{eval_set_digest()}`; "
        "command: `.venv/bin/python benchmarks/pii_accuracy.py --out docs/pii-accuracy.md`.\n"
        "Matching: a detection counts when it overlaps a gold span of its entity by at least half "
        "the span; 95% Wilson intervals.\n\n" + format_table(results) + "\n"
    )
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
