"""The Presidio analyzer finetrail scans with: offline, explicit about coverage, pre-filtered.

Heavy: imports presidio (which imports torch and transformers when they are installed). Only
code that scans or sanitises imports this module, inside the function that needs it.

- NLP engine ``no_op`` by default (no model); a spaCy model only by local path or installed
  package name, never downloaded, described exactly in the evidence (:mod:`.ner`), its
  coverage limited to the entity types its NER labels map to.
- The engine configuration's key and its measured accuracy (:mod:`.accuracy`).
- Presidio's predefined recognisers for the language, with the email recogniser's Public
  Suffix List lookup served from tldextract's bundled snapshot (no network, no cache writes).
- Without spaCy, :class:`~finetrail.governance.pii.names.NameListRecognizer` for PERSON.
- A per-recogniser pre-filter (:mod:`~finetrail.governance.pii.prefilter`) that skips a
  recogniser on text it cannot match; findings are identical to running them all.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import regex
import tldextract
from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpEngineProvider, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, PhoneRecognizer
from presidio_analyzer.recognizer_registry import RecognizerRegistryProvider

from finetrail.errors import ConfigError
from finetrail.governance.evidence.dataset import NerModelInfo, PiiAccuracy, PiiEngineInfo
from finetrail.governance.pii import prefilter
from finetrail.governance.pii.accuracy import accuracy_for, configuration_key
from finetrail.governance.pii.addresses import CONTEXT as ADDRESS_CONTEXT
from finetrail.governance.pii.config import MIN_KEY_BYTES, ScanConfig
from finetrail.governance.pii.names import PREFILTER as NAME_PREFILTER
from finetrail.governance.pii.names import NameListRecognizer, load_name_lists
from finetrail.governance.pii.ner import check_spacy_model, describe_spacy_model
from finetrail.governance.pii.patterns import ENTITIES, PATTERNS, PiiPattern

Finding = tuple[str, int, int, float]  # (entity type, start, end, score)

# Entity types a reader of a PII summary may expect; those no recogniser looked for are listed
# in the evidence as ``not_covered``.
EXPECTED_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION", "ORGANIZATION", "NRP")

WARM_UP_TEXT = (
    "Call John Smith on +1 212-555-0199, +44 20 7946 0958, +49 30 901820, +33 1 23 45 67 89, "
    "+972 2-123-4567, +91 22 1234 5678, +1 416 555 0199 or +55 11 91234-5678 on 2024-01-31 and "
    "12/31/2023; mail a.b@example.com, see https://example.org, 192.168.0.1, ::1, "
    "00:1A:2B:3C:4D:5E, IBAN DE89370400440532013000, SSN 078-05-1120, card 4111111111111111."
)

# Subclasses of PatternRecognizer whose own ``analyze`` still only reports matches of their
# ``patterns`` (checked by qualified name, so a changed class falls back to "always run").
PATTERN_ONLY_ANALYZE: tuple[str, ...] = (
    "presidio_analyzer.predefined_recognizers.generic.iban_recognizer.IbanRecognizer.analyze",
)

# No fetch: no suffix-list URLs, no cache directory; the PSL snapshot bundled with tldextract.
OFFLINE_TLD_EXTRACTOR = tldextract.TLDExtract(
    suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True
)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's EmailRecognizer with its domain check served offline.

    Presidio calls ``tldextract.extract``, whose default extractor downloads the Public Suffix
    List on first use. This one validates against the bundled snapshot and cannot fetch.
    """

    def validate_result(self, pattern_text: str) -> bool:
        return bool(OFFLINE_TLD_EXTRACTOR(pattern_text).fqdn != "")


class TablePatternRecognizer(PatternRecognizer):
    """The entries of finetrail's PII pattern table (:mod:`.patterns`) for one entity, as one
    Presidio recogniser; the table's validate hook is Presidio's ``validate_result``."""

    def __init__(self, entries: Sequence[PiiPattern], *, supported_language: str) -> None:
        self.entries = tuple(entries)
        entity = self.entries[0].entity
        flags = {e.flags for e in self.entries}
        assert len(flags) == 1 and all(e.entity == entity for e in self.entries)
        hooks = {e.validate for e in self.entries}
        assert len(hooks) == 1, f"one validate hook per entity ({entity})"
        self.hook = hooks.pop()
        super().__init__(
            supported_entity=entity,
            name=f"finetrail:{entity}",
            patterns=[Pattern(e.name, e.regex, e.score) for e in self.entries],
            context=list(ADDRESS_CONTEXT) if entity == "STREET_ADDRESS" else [],
            supported_language=supported_language,
            global_regex_flags=flags.pop(),
        )

    def validate_result(self, pattern_text: str) -> bool | None:
        if self.hook is None:
            return None  # keep Presidio's score
        return self.hook(pattern_text)


# Presidio's predefined recognisers that the pattern table replaces (their patterns miss
# 2-series Mastercard and UnionPay numbers, undelimited labelled SSNs and most IPv6 forms).
REPLACED_BY_TABLE: frozenset[str] = frozenset(
    {"CreditCardRecognizer", "UsSsnRecognizer", "IbanRecognizer", "IpRecognizer"}
)


class OfflineSpacyNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine that refuses, instead of downloading, a missing model."""

    @staticmethod
    def _download_spacy_model_if_needed(model_name: str) -> None:
        check_spacy_model(model_name)


def _qualname(func: Any) -> str:
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '')}"


def _gate_for(recognizer: Any) -> Any | None:
    """A compiled necessary condition for ``recognizer`` to report anything, or None."""
    if isinstance(recognizer, NameListRecognizer):
        return regex.compile(NAME_PREFILTER)
    if isinstance(recognizer, PatternRecognizer):
        own = type(recognizer).analyze
        if own is not PatternRecognizer.analyze and _qualname(own) not in PATTERN_ONLY_ANALYZE:
            return None
        patterns = getattr(recognizer, "patterns", None) or []
        if not patterns:
            return None
        flags = getattr(recognizer, "global_regex_flags", None) or 0
        reqs = [prefilter.requirement(p.regex, flags, engine="regex") for p in patterns]
        return prefilter.combine(reqs, engine="regex")
    if type(recognizer).analyze is PhoneRecognizer.analyze:
        # python-phonenumbers only reports candidates matched by its own pattern.
        try:
            from phonenumbers.phonenumbermatcher import _PATTERN
        except ImportError:  # pragma: no cover - a different phonenumbers layout
            return None
        req = prefilter.requirement(_PATTERN.pattern, _PATTERN.flags, engine="re")
        return prefilter.combine([req], engine="re")
    return None


def _describe(recognizer: Any, spacy_model: str | None) -> str:
    if isinstance(recognizer, NameListRecognizer):
        lists = recognizer.lists
        return (
            f"NameListRecognizer (finetrail deny-list of {len(lists.first)} first and "
            f"{len(lists.last)} last names from Faker locales {', '.join(lists.locales)}; "
            "first+last and title+last pairs only)"
        )
    if isinstance(recognizer, OfflineEmailRecognizer):
        return "EmailRecognizer (Presidio pattern; domain checked against the bundled Public Suffix List, offline)"
    if isinstance(recognizer, PhoneRecognizer):
        regions = ", ".join(getattr(recognizer, "supported_regions", []) or [])
        return f"PhoneRecognizer (Presidio, python-phonenumbers; regions {regions})"
    if isinstance(recognizer, TablePatternRecognizer):
        hook = recognizer.hook
        check = f"; validated by {hook.__name__}" if hook is not None else ""
        names = ", ".join(e.name for e in recognizer.entries)
        return f"finetrail pattern table ({names}{check})"
    if isinstance(recognizer, PatternRecognizer):
        return f"{getattr(recognizer, 'name', type(recognizer).__name__)} (Presidio pattern)"
    if type(recognizer).__name__ == "SpacyRecognizer":
        return f"SpacyRecognizer (Presidio NER, spaCy model {spacy_model})"
    return (
        f"{getattr(recognizer, 'name', type(recognizer).__name__)} ({type(recognizer).__module__})"
    )


@dataclass
class PiiEngine:
    """One configured analyzer plus its per-recogniser gates (one per process)."""

    analyzer: Any
    config: ScanConfig
    info: PiiEngineInfo
    coverage: dict[str, str]
    not_covered: tuple[str, ...]
    accuracy: PiiAccuracy | None = None
    gates: list[tuple[Any | None, tuple[str, ...]]] = field(default_factory=list)
    anonymizer: Any = None
    operators: dict[str, Any] | None = None
    sanitize_entities: frozenset[str] | None = None

    def entities_to_run(self, text: str) -> list[str] | None:
        """Entities whose recognisers can match ``text``: None means all, [] means none."""
        run: list[str] = []
        skipped = False
        for gate, entities in self.gates:
            if gate is None or gate.search(text):
                run.extend(e for e in entities if e not in run)
            else:
                skipped = True
        return run if skipped else None

    def analyze(self, text: str) -> tuple[list[Any], bool]:
        """Presidio results for ``text`` and whether the pre-filter skipped it entirely."""
        entities = self.entities_to_run(text) if self.config.prefilter else None
        if entities == []:
            return [], True
        results = self.analyzer.analyze(
            text=text,
            language=self.config.language,
            entities=entities,
            score_threshold=self.config.score_threshold,
        )
        return results, False

    def warm_up(self) -> None:
        """Run every recogniser once, so lazy state (compiled patterns, phone metadata per
        region) is loaded before worker processes are forked from this one."""
        self.analyzer.analyze(text=WARM_UP_TEXT, language=self.config.language)

    def findings(self, text: str) -> tuple[list[Finding], bool]:
        results, skipped = self.analyze(text)
        return [(r.entity_type, r.start, r.end, r.score) for r in results], skipped

    def sanitize(self, text: str) -> tuple[list[Finding], str, bool]:
        """Findings in ``text`` and the text with the targeted ones replaced by the operator."""
        from presidio_anonymizer.entities import ConflictResolutionStrategy

        results, skipped = self.analyze(text)
        found = [(r.entity_type, r.start, r.end, r.score) for r in results]
        if self.sanitize_entities is not None:
            results = [r for r in results if r.entity_type in self.sanitize_entities]
        if not results:
            return found, text, skipped
        for r in results:
            r.start, r.end = widen(text, r.start, r.end)
        out = self.anonymizer.anonymize(
            text=text,
            analyzer_results=results,
            operators=self.operators,
            conflict_resolution=ConflictResolutionStrategy.REMOVE_INTERSECTIONS,
        )
        return found, str(out.text), skipped


# A finding that starts or ends inside a word is widened to the whole word before it is
# replaced, so no fragment of an identifier is left behind (a licence-number match inside a
# tracking number otherwise leaves a digit run that reads as a phone number). Latin letters,
# digits and "_" only: text without spaces (CJK) is not widened into whole sentences.
WORD_CHAR = regex.compile(r"[0-9A-Za-z_\u00c0-\u024f]")


def widen(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` extended to the word characters it starts and ends inside."""
    if start < end and WORD_CHAR.match(text[start]):
        while start > 0 and WORD_CHAR.match(text[start - 1]):
            start -= 1
    if start < end and WORD_CHAR.match(text[end - 1]):
        while end < len(text) and WORD_CHAR.match(text[end]):
            end += 1
    return start, end


def _nlp_engine(config: ScanConfig) -> tuple[Any, NerModelInfo | None]:
    """The NLP engine for ``config`` and, with a spaCy model, what that model is."""
    if config.spacy_model:
        check_spacy_model(config.spacy_model)
        engine = OfflineSpacyNlpEngine(
            models=[{"lang_code": config.language, "model_name": config.spacy_model}]
        )
        engine.load()
        nlp: Any = engine.nlp
        ner = describe_spacy_model(config.spacy_model, nlp[config.language])
        conf = engine.ner_model_configuration
        mapped = dict(conf.model_to_presidio_entity_mapping or {})
        # labels Presidio cannot map (CARDINAL, MONEY, ...) are never reported; ignoring them
        # changes no finding and stops one warning per entity per text
        conf.labels_to_ignore = sorted(
            set(conf.labels_to_ignore or ()) | {lbl for lbl in ner.labels if lbl not in mapped}
        )
        return engine, ner
    noop = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "no_op",
            "models": [{"lang_code": config.language, "model_name": "no_op"}],
        }
    ).create_engine()
    return noop, None


def _ner_entities(nlp_engine: Any, ner: NerModelInfo) -> set[str]:
    """The Presidio entity types the model's NER labels map to (what it can actually find)."""
    conf = getattr(nlp_engine, "ner_model_configuration", None)
    mapping = dict(getattr(conf, "model_to_presidio_entity_mapping", None) or {})
    ignored = set(getattr(conf, "labels_to_ignore", None) or ())
    return {mapping[label] for label in ner.labels if label in mapping and label not in ignored}


def library_versions(ner: NerModelInfo | None) -> dict[str, str]:
    out = {"presidio-analyzer": importlib.metadata.version("presidio-analyzer")}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # presidio needs it
        out["phonenumbers"] = importlib.metadata.version("phonenumbers")
    if ner is not None:
        out["spacy"] = ner.engine.removeprefix("spacy ")
        out["ner-model"] = f"{ner.model} {ner.version}"
    return out


def build_engine(config: ScanConfig) -> PiiEngine:
    """The analyzer for ``config`` with its gates, coverage map and description."""
    nlp_engine, ner = _nlp_engine(config)
    log = logging.getLogger("presidio-analyzer")
    level = log.level
    log.setLevel(logging.ERROR)  # one warning per recogniser of other languages otherwise
    try:
        registry = RecognizerRegistryProvider(
            registry_configuration={"supported_languages": [config.language]}
        ).create_recognizer_registry()
    finally:
        log.setLevel(level)
    registry.add_nlp_recognizer(nlp_engine=nlp_engine)
    loaded = registry.recognizers
    assert isinstance(loaded, list)
    loaded[:] = [r for r in loaded if type(r).__name__ not in REPLACED_BY_TABLE]
    for i, rec in enumerate(loaded):
        if type(rec) is EmailRecognizer:  # keep its place (result order) and its name
            loaded[i] = OfflineEmailRecognizer(
                supported_language=rec.supported_language, context=rec.context
            )
    name_info = None
    if not config.spacy_model:
        lists = load_name_lists(config.name_locales)
        registry.add_recognizer(NameListRecognizer(lists, supported_language=config.language))
        name_info = lists.describe()
    for entity in ENTITIES:
        if entity == "STREET_ADDRESS" and config.language != "en":
            continue  # US addresses: English text only
        entries = [e for e in PATTERNS if e.entity == entity]
        registry.add_recognizer(TablePatternRecognizer(entries, supported_language=config.language))
    analyzer = AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=[config.language]
    )
    recognizers = registry.get_recognizers(language=config.language, all_fields=True)
    coverage: dict[str, str] = {}
    gates: list[tuple[Any | None, tuple[str, ...]]] = []
    reachable = _ner_entities(nlp_engine, ner) if ner is not None else set()
    for rec in recognizers:
        entities = tuple(rec.get_supported_entities())
        gates.append((_gate_for(rec), entities))
        is_ner = type(rec).__name__ == "SpacyRecognizer"
        for ent in entities:
            if is_ner and ent not in reachable:
                continue  # Presidio's label map names it; this model has no label for it
            desc = _describe(rec, config.spacy_model)
            coverage[ent] = f"{coverage[ent]}; {desc}" if ent in coverage else desc
    not_covered = tuple(e for e in EXPECTED_ENTITIES if e not in coverage)
    configuration = configuration_key(
        language=config.language,
        score_threshold=config.score_threshold,
        ner=ner,
        name_locales=config.name_locales,
    )
    info = PiiEngineInfo(
        analyzer=f"presidio-analyzer {importlib.metadata.version('presidio-analyzer')}",
        nlp_engine="spacy" if config.spacy_model else "no_op",
        spacy_model=config.spacy_model,
        language=config.language,
        name_list=name_info,
        prefilter=config.prefilter,
        fields=config.text_fields,
        ner=ner,
        configuration=configuration,
    )
    accuracy = accuracy_for(configuration, coverage, ner=ner, versions=library_versions(ner))
    return PiiEngine(
        analyzer=analyzer,
        config=config,
        info=info,
        coverage=dict(sorted(coverage.items())),
        not_covered=not_covered,
        accuracy=accuracy,
        gates=gates,
    )


def with_sanitizer(
    engine: PiiEngine, *, operator: str, key: bytes | None, entities: Sequence[str] | None
) -> PiiEngine:
    """Attach presidio-anonymizer and the operator for ``sanitize``."""
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig

    if operator == "replace":
        op = OperatorConfig("replace")  # "<ENTITY_TYPE>"
    elif operator == "mask":
        op = OperatorConfig(
            "mask", {"masking_char": "*", "chars_to_mask": 1 << 30, "from_end": False}
        )
    elif operator == "hash":
        if key is None or len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                f"the hash operator needs a key of at least {MIN_KEY_BYTES} bytes",
                field="key",
                fix="pass --key-env VAR or --key-file PATH holding a random secret",
            )
        op = OperatorConfig("hash", {"hash_type": "sha256", "salt": key})
    else:
        raise ConfigError(
            f"unknown operator {operator!r}", field="operator", fix="use replace, mask or hash"
        )
    engine.anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]
    engine.operators = {"DEFAULT": op}
    engine.sanitize_entities = frozenset(entities) if entities else None
    return engine


def to_results(findings: Sequence[Finding]) -> list[Any]:
    return [RecognizerResult(entity_type=e, start=s, end=t, score=sc) for e, s, t, sc in findings]
