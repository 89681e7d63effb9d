"""What every probe receives: models, data, canaries, the DP claim, settings and progress.

:class:`ProbeConfig` is a frozen pydantic model (``extra="forbid"``), loadable from YAML or JSON.
Canary log-likelihoods are computed once per context and shared by the exposure probe and the DP
audit (:meth:`ProbeContext.canary_scores`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import Field, ValidationError

from finetrail.errors import InputError
from finetrail.governance.evidence.base import Frozen, validation_error_to_input_error
from finetrail.governance.evidence.probes import ProbeSubject
from finetrail.governance.io import read_text_strict
from finetrail.governance.probes.canaries import Canary, CanarySet
from finetrail.governance.probes.extraction_scanner import PiiScanner
from finetrail.governance.probes.models import ProbeModels
from finetrail.governance.probes.secret_space import PLAIN, CanaryFraming


class ExposureConfig(Frozen):
    max_exact_candidates: int = Field(
        default=2_000_000, ge=1, description="tree leaves scored at most"
    )
    samples: int = Field(
        default=4000, ge=50, description="random candidates for the skew-normal fit"
    )
    chunk: int = Field(default=4096, ge=1, description="tree nodes per forward pass")
    calibrate_with_base: bool = Field(
        default=True, description="also rank the canaries under the base model and subtract"
    )
    seed: int = 0


class ExtractionConfig(Frozen):
    max_prompts: int = Field(default=200, ge=1)
    samples_per_prompt: int = Field(default=4, ge=0)
    min_beams: int = Field(default=4, ge=1, description="beams per prompt (1: no beam search)")
    max_beams: int = Field(default=64, ge=1)
    beams_per_target: int = Field(
        default=2, ge=1, description="beams per identifier after a prompt"
    )
    generic_samples: int = Field(default=32, ge=0)
    max_new_tokens: int = Field(default=24, ge=1)
    prompt_tokens: int = Field(default=64, ge=1, description="prompt context kept (last tokens)")
    temperature: float = Field(default=1.0, gt=0)
    top_k: int = Field(default=40, ge=0)
    examples: int = Field(default=10, ge=0, description="masked examples stored")
    generic_prompts: tuple[str, ...] = (
        "My email address is",
        "You can reach me at",
        "My phone number is",
        "My social security number is",
    )
    seed: int = 0


class MembershipConfig(Frozen):
    max_examples: int = Field(default=500, ge=2, description="per side (members, non-members)")
    k_fraction: float = Field(default=0.2, gt=0, le=1, description="Min-K% and Min-K%++ k")
    exchangeability_tolerance: float = Field(
        default=0.05,
        ge=0,
        le=0.5,
        description="|base-model AUC - 0.5| allowed (see Exchangeability)",
    )
    bootstrap: int = Field(default=500, ge=10)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    seed: int = 0


class AuditConfig(Frozen):
    confidence: float = Field(default=0.95, gt=0, lt=1)
    guess_fractions: tuple[float, ...] = Field(default=(0.2, 0.4, 0.6, 0.8, 1.0), min_length=1)
    threshold_selection: Literal["bonferroni", "split"] = "bonferroni"
    delta_if_unclaimed: float = Field(default=1e-5, gt=0, lt=1)
    calibrate_with_base: bool = True
    seed: int = 0


class ProbeConfig(Frozen):
    exposure: ExposureConfig = ExposureConfig()
    extraction: ExtractionConfig = ExtractionConfig()
    membership: MembershipConfig = MembershipConfig()
    dp_audit: AuditConfig = AuditConfig()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ProbeConfig:
        import yaml

        text = read_text_strict(path)
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"malformed YAML: {exc}", path=str(path)) from exc
        if not isinstance(data, dict):
            raise InputError("expected a mapping of probe settings", path=str(path))
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise validation_error_to_input_error(
                exc, source=str(path), what="invalid probe config"
            ) from exc


@dataclass(frozen=True)
class DPClaim:
    epsilon: float | None
    delta: float | None
    accountant: str | None = None


class Progress(Protocol):
    def start(self, label: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...


class NullProgress:
    def start(self, label: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


@dataclass
class CanaryScores:
    """Log-likelihood of each canary's secret given the text before it (by canary id)."""

    finetuned: dict[str, float]
    base: dict[str, float] | None


@dataclass
class ProbeContext:
    models: ProbeModels
    subject: ProbeSubject
    canaries: CanarySet | None = None
    train_texts: list[str] | None = None
    heldout_texts: list[str] | None = None
    claim: DPClaim | None = None
    config: ProbeConfig = field(default_factory=ProbeConfig)
    progress: Progress = field(default_factory=NullProgress)
    scanner: PiiScanner | None = None  # extra scanner (e.g. Presidio), combined with the regexes
    # chat data: the texts are conversations rendered as training rendered them, and the
    # canaries are scored after their conversation's framing (see :func:`chat_framing`)
    framing: CanaryFraming = PLAIN
    heldout_lineage_texts: list[str] | None = None  # what lineage.heldout_texts_sha256 digests
    _memo: dict[str, Any] = field(default_factory=dict)

    def canary_texts(self) -> set[str]:
        """The training texts that are canary copies (as rendered for the model)."""
        if self.canaries is None:
            return set()
        return {self.framing.before + c.text + self.framing.after for c in self.canaries.canaries}

    def member_texts(self) -> list[str]:
        """Training texts that are not canary copies, without duplicates, in order."""
        canary_texts = self.canary_texts()
        seen: set[str] = set()
        out = []
        for t in self.train_texts or []:
            if t not in canary_texts and t not in seen:
                seen.add(t)
                out.append(t)
        return out

    def canary_scores(self) -> CanaryScores:
        if "canary_scores" not in self._memo:
            from finetrail.governance.probes.secret_space import secret_logprobs

            assert self.canaries is not None
            cans: list[Canary] = list(self.canaries.canaries)
            ft = secret_logprobs(self.models.model, self.models.tok, cans, framing=self.framing)
            base = None
            with self.models.base() as base_model:
                if base_model is not None:
                    base = secret_logprobs(base_model, self.models.tok, cans, framing=self.framing)
            self._memo["canary_scores"] = CanaryScores(finetuned=ft, base=base)
        result: CanaryScores = self._memo["canary_scores"]
        return result
