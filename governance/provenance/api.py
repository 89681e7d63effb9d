"""The provenance facade: register, prove, sanitise, look up. Keyword-only, stable returns.

Registration reads the file once, streaming: the byte SHA-256 (a background thread), the
records (validated, counted, their field schema and a token estimate), the Merkle tree over
their canonical bytes (leaf hashes streamed to a temporary file), and, with ``scan=True``, the
PII scan (parallel workers). Only when everything succeeded does it write to the workspace: the
leaf hashes as an artifact, then the :class:`DatasetRecord` (with its ledger event). A failure
before that leaves the workspace untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from finetrail.errors import CheckFailed, InputError, IntegrityError
from finetrail.governance import clock
from finetrail.governance.evidence.dataset import (
    DatasetRecord,
    FieldInfo,
    PiiSummary,
    dataset_record_path,
    leaves_artifact_path,
)
from finetrail.governance.io import sha256_file
from finetrail.governance.pii.config import OPERATORS, ScanConfig
from finetrail.governance.provenance import lineage
from finetrail.governance.provenance.formats import DatasetReader, detect_format, json_type
from finetrail.governance.provenance.hashing import DEFAULT_MAX_RECORD_BYTES
from finetrail.governance.provenance.licenses import check_license
from finetrail.governance.provenance.merkle import (
    PROOF_FORMAT,
    MerkleBuilder,
    find_leaf,
    inclusion_path,
)
from finetrail.governance.provenance.proofcheck import leaf_hash, strip_terminator, verify_inclusion
from finetrail.governance.workspace import Workspace, default_actor
from finetrail.progress import Bar, reading

MAX_SCHEMA_FIELDS = 1000
TOKEN_METHOD = "characters of the text fields / 4 (estimate; no tokenizer)"
LEAF_INPUT = {
    "jsonl": "each non-blank line as stored, without its line terminator",
    "text": "each non-blank line as stored, without its line terminator",
    "csv": "each data row as canonical JSON {column: value} (sorted keys, UTF-8, compact)",
    "parquet": "each row as canonical JSON {column: value} (sorted keys, UTF-8, compact)",
}
_LEAF_BATCH = 4096


# -- record text ----------------------------------------------------------------------------
def text_units(value: Any, fields: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(field path, text) for every non-empty string in a record, in a fixed order."""
    out: list[tuple[str, str]] = []
    if isinstance(value, str):
        if value and (fields is None or "text" in fields):
            out.append(("text", value))
        return out

    def walk(v: Any, path: str) -> None:
        if isinstance(v, str):
            if v:
                out.append((path, v))
        elif isinstance(v, dict):
            for k, sub in v.items():
                walk(sub, f"{path}.{k}")
        elif isinstance(v, list | tuple):
            for sub in v:
                walk(sub, f"{path}[]")

    for key, sub in value.items():
        if fields is None or key in fields:
            walk(sub, str(key))
    return out


def replace_texts(value: Any, new_texts: Iterator[str], fields: Sequence[str] | None = None) -> Any:
    """``value`` with its strings replaced, in :func:`text_units` order."""
    if isinstance(value, str):
        return next(new_texts) if value and (fields is None or "text" in fields) else value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return next(new_texts) if v else v
        if isinstance(v, dict):
            return {k: walk(sub) for k, sub in v.items()}
        if isinstance(v, list | tuple):
            return [walk(sub) for sub in v]
        return v

    return {k: (walk(sub) if fields is None or k in fields else sub) for k, sub in value.items()}


class _SchemaTally:
    def __init__(self) -> None:
        self.types: dict[str, set[str]] = {}
        self.present: dict[str, int] = {}

    def add(self, value: Any) -> None:
        if isinstance(value, str):
            value = {"text": value}
        types, present = self.types, self.present
        for key, v in value.items():
            seen = types.get(key)
            if seen is None:
                if len(types) >= MAX_SCHEMA_FIELDS:
                    continue
                seen = types[key] = set()
                present[key] = 0
            seen.add(json_type(v))
            present[key] += 1

    def fields(self) -> dict[str, FieldInfo]:
        order = ("string", "integer", "number", "boolean", "null", "object", "array")
        return {
            k: FieldInfo.model_validate(
                {"types": tuple(t for t in order if t in self.types[k]), "present": self.present[k]}
            )
            for k in sorted(self.types)
        }


# -- register ------------------------------------------------------------------------------
def _actor(ws: Workspace, actor: str | None) -> str:
    return default_actor(actor, owner=ws.metadata.owner)


def register_dataset(
    *,
    workspace: str | os.PathLike[str],
    path: str | os.PathLike[str],
    name: str,
    license: str,
    source: str,
    collection: str,
    legal_basis: str,
    purpose: str,
    splits: Mapping[str, float] | None = None,
    limitations: Sequence[str] = (),
    derived_from: Sequence[str] = (),
    transform: str | None = None,
    transform_params: Mapping[str, Any] | None = None,
    format: str | None = None,
    skip_bad_records: bool = False,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    scan: bool = False,
    scan_config: ScanConfig | None = None,
    actor: str | None = None,
    residual_for: Sequence[str] | None = None,
    pii_summary: PiiSummary | None = None,
    progress: Bar | None = None,
) -> DatasetRecord:
    """Register a dataset file in a workspace; returns the record written.

    With ``scan=True`` the records are scanned for PII (presidio is imported only then).
    ``pii_summary`` instead records a scan made elsewhere on this same file (for instance on
    Spark, see docs/pii-at-scale.md); its ``records_scanned`` must equal the record count.
    ``derived_from`` names parent datasets (digest, digest prefix or name) and needs
    ``transform``. Bad records raise :class:`InputError` naming the line, unless
    ``skip_bad_records``; then they are left out and counted in ``record.skipped``.
    ``progress`` (a :class:`finetrail.progress.Bar`) shows the bytes read on stderr.
    """
    ws = Workspace.open(workspace)
    fmt = detect_format(path, format)
    existing = lineage.load_datasets(ws.root)
    problems: list[str] = []
    fields_bad: list[str] = []
    normalised_license = ""
    try:
        normalised_license = check_license(license).expression
    except InputError as err:
        problems.append(err.what)
        fields_bad.append("license")
    for fname, val in (
        ("name", name),
        ("source", source),
        ("collection", collection),
        ("legal_basis", legal_basis),
        ("purpose", purpose),
    ):
        if not val or not val.strip():
            problems.append(f"{fname} is empty")
            fields_bad.append(fname)
    parents: list[str] = []
    for ref in derived_from:
        try:
            parents.append(lineage.resolve(existing, ref).sha256)
        except InputError as err:
            problems.append(f"derived_from: {err.what}")
            fields_bad.append("derived_from")
    if parents and not transform:
        problems.append("a derived dataset must name its transform (--transform)")
        fields_bad.append("transform")
    if transform and not derived_from:
        problems.append("--transform needs the parent dataset(s) (--derived-from)")
        fields_bad.append("derived_from")
    if not Path(path).is_file():
        problems.append(f"dataset file not found: {path}")
        fields_bad.append("path")
    if scan and pii_summary is not None:
        problems.append("give scan=True or a pii_summary, not both")
        fields_bad.append("pii")
    if problems:
        raise InputError(
            "cannot register the dataset: " + "; ".join(problems),
            path=str(path),
            field=fields_bad[0],
            fix="correct the named items and run the command again",
        )
    config = scan_config or ScanConfig()
    scanner = None
    if scan:
        from finetrail.governance.pii.scan import open_scanner

        scanner = open_scanner(config)
    reader = DatasetReader(path, fmt, skip_bad=skip_bad_records, max_record_bytes=max_record_bytes)
    bar = reading(progress, "hash + pii scan" if scanner is not None else "hash", reader)
    fd, leaves_tmp = tempfile.mkstemp(prefix="finetrail-leaves-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as leaves_fh:
            builder = MerkleBuilder(leaves_fh)
            schema = _SchemaTally()
            chars = 0
            batch: list[bytes] = []
            for rec in reader:
                batch.append(rec.canonical)
                if len(batch) >= _LEAF_BATCH:
                    builder.add_records(batch)
                    batch = []
                schema.add(rec.value)
                units = text_units(rec.value if rec.raw is None else rec.raw, config.text_fields)
                chars += sum(len(t) for _, t in units)
                if scanner is not None:
                    for _ in scanner.add(rec.index, units):
                        pass
                bar.record(reader.bytes_read)
            builder.add_records(batch)
            bar.close()
            if scanner is not None:
                for _ in scanner.finish():
                    pass
        if builder.size == 0:
            extra = (
                f" ({reader.skipped.count} bad records were skipped)"
                if reader.skipped.count
                else ""
            )
            raise InputError(
                f"the dataset is empty: no records{extra}", path=str(path), fix="check the file"
            )
        assert reader.sha256 is not None
        sha = reader.sha256
        if sha in existing:
            raise InputError(
                f"this file is already registered as {existing[sha].name!r} ({sha[:12]}...)",
                path=str(path),
                fix="a dataset is registered once; derived versions are new files",
            )
        cycle = lineage.lineage_problems(existing, sha, parents)
        if cycle:
            raise InputError("; ".join(cycle), path=str(path), field="derived_from")
        pii = pii_summary
        if scanner is not None:
            pii = scanner.tally.summary(scanner.engine, residual_for)
        if pii is not None and pii.records_scanned != builder.size:
            raise InputError(
                f"the PII summary covers {pii.records_scanned} records, the file has {builder.size}",
                path=str(path),
                field="pii",
                fix="scan exactly the records of this file",
            )
        record = DatasetRecord.parse(
            {
                "name": name.strip(),
                "sha256": sha,
                "merkle_root": builder.root().hex(),
                "records": builder.size,
                "format": fmt,
                "size_bytes": reader.size,
                "filename": Path(path).name,
                "merkle": {
                    "leaf_input": LEAF_INPUT[fmt],
                    "leaves_artifact": leaves_artifact_path(sha),
                    "leaves_sha256": sha256_file(leaves_tmp),
                },
                "fields": {k: v.model_dump() for k, v in schema.fields().items()},
                "tokens": {"count": math.ceil(chars / 4), "method": TOKEN_METHOD},
                "license": normalised_license,
                "source": source.strip(),
                "collection": collection.strip(),
                "legal_basis": legal_basis.strip(),
                "purpose": purpose.strip(),
                "splits": dict(splits or {}),
                "limitations": tuple(limitations),
                "derived_from": tuple(parents),
                "transform": transform,
                "transform_params": dict(transform_params or {}),
                "skipped": {
                    "count": reader.skipped.count,
                    "reasons": dict(sorted(reader.skipped.reasons.items())),
                    "first": tuple(reader.skipped.first),
                },
                "pii": pii.model_dump(mode="json") if pii is not None else None,
                "registered": clock.now().isoformat(),
            },
            source=str(path),
        )
        who = _actor(ws, actor)
        ws.add_artifact(
            leaves_tmp,
            record.merkle.leaves_artifact,
            event="dataset.leaves",
            actor=who,
            extra={"dataset": sha, "records": record.records},
        )
        ws.write_record(
            dataset_record_path(sha),
            record,
            event="dataset.registered",
            actor=who,
            extra={
                "name": record.name,
                "merkle_root": record.merkle_root,
                "records": record.records,
                "derived_from": list(record.derived_from),
                "scanned": pii is not None,
            },
        )
        return record
    finally:
        bar.close()
        if scanner is not None:
            scanner.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leaves_tmp)


# -- look up ----------------------------------------------------------------------------------
def list_datasets(*, workspace: str | os.PathLike[str]) -> list[DatasetRecord]:
    ws = Workspace.open(workspace)
    return sorted(lineage.load_datasets(ws.root).values(), key=lambda r: (r.registered, r.name))


def find_dataset(*, workspace: str | os.PathLike[str], ref: str) -> DatasetRecord:
    ws = Workspace.open(workspace)
    return lineage.resolve(lineage.load_datasets(ws.root), ref)


def dataset_for_file(
    *, workspace: str | os.PathLike[str], path: str | os.PathLike[str]
) -> DatasetRecord | None:
    """The registered dataset whose byte SHA-256 equals the file's, or None (for training)."""
    ws = Workspace.open(workspace)
    return lineage.load_datasets(ws.root).get(sha256_file(path))


# -- prove ------------------------------------------------------------------------------------
def prove_record(
    *,
    workspace: str | os.PathLike[str],
    dataset: str,
    index: int | None = None,
    record_hash: str | None = None,
    record_bytes: bytes | None = None,
) -> dict[str, Any]:
    """An inclusion proof for one record: by index, by leaf hash, or by the record's bytes.

    Raises :class:`CheckFailed` when the record is not in the dataset: it cannot be proven.
    """
    given = sum(x is not None for x in (index, record_hash, record_bytes))
    if given != 1:
        raise InputError(
            "give exactly one of --record, --record-hash or --record-file", field="record"
        )
    ws = Workspace.open(workspace)
    rec = lineage.resolve(lineage.load_datasets(ws.root), dataset)
    leaves = ws.path(rec.merkle.leaves_artifact)
    if not leaves.is_file() or sha256_file(leaves) != rec.merkle.leaves_sha256:
        raise IntegrityError(
            "the dataset's leaf hashes are missing or altered",
            path=str(leaves),
            fix="run `finetrail verify` on the workspace",
        )
    if index is None:
        if record_bytes is not None:
            leaf = leaf_hash(strip_terminator(record_bytes))
        else:
            assert record_hash is not None
            h = record_hash.strip().lower()
            if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise InputError("the record hash must be 64 hex digits", field="record_hash")
            leaf = bytes.fromhex(h)
        found = find_leaf(leaves, leaf)
        if found is None:
            raise CheckFailed(
                f"the record is not in dataset {rec.name!r}: no leaf {leaf.hex()[:16]}... among "
                f"its {rec.records} records, so no inclusion proof exists",
                why="the leaf hash is SHA-256(0x00 || record bytes); " + rec.merkle.leaf_input,
            )
        index = found
    leaf, path, size = inclusion_path(leaves, index)
    root = bytes.fromhex(rec.merkle_root)
    if size != rec.records or not verify_inclusion(index, size, leaf, path, root):
        raise IntegrityError(
            "the leaf hashes do not lead to the recorded Merkle root", path=str(leaves)
        )
    return {
        "format": PROOF_FORMAT,
        "hashing": "RFC 6962 / RFC 9162 with SHA-256: leaf = H(0x00 || record), node = H(0x01 || left || right)",
        "dataset": {"name": rec.name, "sha256": rec.sha256},
        "leaf_input": rec.merkle.leaf_input,
        "merkle_root": rec.merkle_root,
        "tree_size": size,
        "leaf_index": index,
        "leaf_hash": leaf.hex(),
        "audit_path": [p.hex() for p in path],
    }


# -- sanitise -----------------------------------------------------------------------------------
def key_id(key: bytes) -> str:
    """A public fingerprint of a hashing key (never the key)."""
    return hashlib.sha256(b"finetrail-key-id\x00" + key).hexdigest()[:16]


def sanitize_dataset(
    *,
    workspace: str | os.PathLike[str],
    dataset: str,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    operator: str = "replace",
    key: bytes | None = None,
    entities: Sequence[str] | None = None,
    name: str | None = None,
    scan_config: ScanConfig | None = None,
    actor: str | None = None,
    progress: Bar | None = None,
) -> tuple[DatasetRecord, dict[str, int]]:
    """Write a sanitised copy of a registered dataset, re-scan it, register it with lineage.

    The written file is read back and scanned with every engine (the pattern table and
    Presidio). When either still finds a value of a targeted type (``entities``, or every type
    found in the input or the output when none are named), :class:`CheckFailed` (exit 1) names
    the types, counts and record positions (never the values); the output is removed and
    nothing is registered. Otherwise returns the new record (its ``pii`` is the re-scan;
    ``pii.residual`` all zero, ``pii.residual_by_engine`` per engine) and the input's counts.
    """
    from finetrail.governance.provenance import sanitize

    if operator not in OPERATORS:
        raise InputError(
            f"unknown operator {operator!r}",
            field="operator",
            fix=f"use one of {', '.join(OPERATORS)}",
        )
    parent = find_dataset(workspace=workspace, ref=dataset)
    config = scan_config or ScanConfig()
    before = sanitize.write_sanitized(
        parent=parent,
        input_path=Path(input_path),
        output_path=Path(output_path),
        operator=operator,
        key=key,
        entities=entities,
        config=config,
        progress=progress,
    )
    params: dict[str, Any] = {
        "operator": operator,
        "entities": list(entities) if entities else "all detected",
        "score_threshold": config.score_threshold,
        "analyzer": "presidio-analyzer (see pii.engine)",
        "rescan": "pattern table and presidio (see pii.residual_by_engine)",
    }
    if operator == "hash" and key is not None:
        params["key_id"] = key_id(key)
    try:
        rescan = sanitize.rescan_output(
            path=Path(output_path),
            fmt=parent.format,
            config=config,
            operator=operator,
            progress=progress,
        )
        targeted = sanitize.targeted_types(entities, before, rescan)
        problem = sanitize.residual_problem(rescan, targeted)
        if problem is not None:
            raise problem
        record = register_dataset(
            workspace=workspace,
            path=output_path,
            name=name or f"{parent.name} (sanitised: {operator})",
            license=parent.license,
            source=parent.source,
            collection=parent.collection,
            legal_basis=parent.legal_basis,
            purpose=parent.purpose,
            splits=parent.splits,
            limitations=parent.limitations,
            derived_from=[parent.sha256],
            transform="pii-sanitize",
            transform_params=params,
            format=parent.format,
            scan_config=config,  # its text fields, for the token estimate
            actor=actor,
            pii_summary=rescan.with_residual(targeted),
            progress=progress,
        )
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(output_path)
        raise
    return record, before
