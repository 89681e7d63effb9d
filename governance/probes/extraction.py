"""Extraction: prompt with the text before each identifier in the training records (and with
generic prompts), decode greedily, by beam search and by sampling, and scan the generations for
identifiers.

A training identifier the fine-tuned model emits is a *memorised identifier*; it is attributed to
the fine-tune only if the base model, given the same prompt and the same decoding (same random
seed), does not emit it too. Counted as distinct values; only masked examples are stored.
"""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from finetrail.errors import CheckFailed
from finetrail.governance.evidence.probes import EntityExtraction, ExtractionEvidence, MaskedExample
from finetrail.governance.probes.context import ProbeContext
from finetrail.governance.probes.extraction_scanner import (
    CombinedScanner,
    PiiScanner,
    RegexPiiScanner,
    mask,
    masked_tail,
)
from finetrail.governance.probes.formats import format_by_name
from finetrail.governance.probes.models import TokenizerAdapter

Decoding = Literal["greedy", "beam", "sampled"]


@dataclass
class Prompt:
    text: str
    ids: list[int]
    kind: Literal["training_context", "generic"]
    beams: int
    samples: int
    targets: set[str] = field(default_factory=set)

    def runs(self) -> list[tuple[Decoding, int]]:
        out: list[tuple[Decoding, int]] = [("greedy", 1)]
        if self.beams > 1:
            out.append(("beam", self.beams))
        if self.samples > 0:
            out.append(("sampled", self.samples))
        return out


# largest |logit difference| between generate() and forward(), relative to the largest |logit|
# (at least 1): float32, and half precision (a cached step rounds differently)
GENERATION_TOLERANCE = {"float32": 1e-3, "half": 5e-2}


def _is_prompt_learning(model: Any) -> bool:
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


@contextlib.contextmanager
def prefix_generation(model: Any) -> Iterator[Any]:
    """``model`` with a generation step that uses the trained prefix as its cache.

    peft's ``prepare_inputs_for_generation`` returns the prefix as ``past_key_values``; when the
    step also carries the ``cache`` that transformers 5 generates with, the model uses ``cache``
    and drops the prefix. Here the prefix replaces the empty cache at the first step (the model
    then extends it), and later steps keep the cache, which already holds it. Other models pass
    through unchanged."""
    peft_prepare: Any = getattr(model, "prepare_inputs_for_generation", None)
    own = getattr(type(model), "prepare_inputs_for_generation", None)
    # peft's disable_adapter() swaps in the base model's step: then there is no prefix to add
    if not _is_prompt_learning(model) or getattr(peft_prepare, "__func__", None) is not own:
        yield model
        return
    saved = vars(model).get("prepare_inputs_for_generation")  # disable_adapter() leaves one

    def prepare(*args: Any, **kwargs: Any) -> Any:
        out = peft_prepare(*args, **kwargs)
        prefix = out.pop("past_key_values", None) if "cache" in out else None
        if prefix is not None:
            cache = out["cache"]
            if cache is None or cache.get_seq_length() == 0:
                out["cache"] = prefix
        return out

    model.prepare_inputs_for_generation = prepare
    try:
        yield model
    finally:
        if saved is not None:
            model.prepare_inputs_for_generation = saved
        else:
            del model.prepare_inputs_for_generation


def check_generation(
    model: Any, tok: TokenizerAdapter, prompt: list[int], *, steps: int = 3
) -> float:
    """Greedy ``generate()`` against ``steps`` forward passes of the same model: the largest
    |logit difference| relative to the largest |logit| (at least 1). Raises :class:`~finetrail.errors.CheckFailed` above the tolerance
    (generation would measure another model than the one trained, e.g. a base without its
    prefix)."""
    import torch

    from finetrail.governance.probes.scoring import model_device

    device = model_device(model)
    ids = torch.tensor([prompt], dtype=torch.long, device=device)
    with torch.no_grad(), prefix_generation(model) as m:
        gen = m.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            num_beams=1,
            pad_token_id=tok.pad_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        worst = 0.0
        for k, step_logits in enumerate(gen.logits):
            cur = gen.sequences[:, : ids.shape[1] + k]
            want = model(input_ids=cur, attention_mask=torch.ones_like(cur)).logits[:, -1].float()
            diff = float((step_logits.float() - want).abs().max())
            worst = max(worst, diff / max(1.0, float(want.abs().max())))
    dtype = next(model.parameters()).dtype
    tolerance = GENERATION_TOLERANCE["float32" if dtype == torch.float32 else "half"]
    if worst > tolerance:
        kind = "a prompt-learning (prefix) model" if _is_prompt_learning(model) else "the model"
        raise CheckFailed(
            f"generate() on {kind} does not reproduce its forward pass (largest relative logit "
            f"difference {worst:.3g}, tolerance {tolerance:g})",
            why="the extraction probe would measure another model than the one trained (for "
            "prefix tuning: the base model without its prefix)",
            fix="report the transformers/peft versions; run the other probes with "
            "--probes exposure,membership meanwhile",
        )
    return worst


def generate(
    model: Any,
    tok: TokenizerAdapter,
    prompts: Sequence[list[int]],
    *,
    mode: Decoding,
    n: int,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    seed: int,
) -> list[list[str]]:
    """``n`` continuations per prompt: greedy (n = 1), the n best beams, or n samples.
    Left-padded batches; the same seed for every model."""
    import torch

    from finetrail.governance.probes.scoring import model_device, token_budget

    device = model_device(model)
    out: list[list[str]] = [[] for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    width_cap = max(1, token_budget(model) // (max_new_tokens + 1))
    per_batch = max(1, min(256, width_cap) // max(1, n))
    torch.manual_seed(seed)
    with torch.no_grad():
        for s in range(0, len(order), per_batch):
            idx = order[s : s + per_batch]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), tok.pad_id, dtype=torch.long)
            mask_ = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                p = prompts[i]
                ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
                mask_[row, width - len(p) :] = 1
            kwargs: dict[str, Any] = {
                "max_new_tokens": max_new_tokens,
                "do_sample": mode == "sampled",
                "num_return_sequences": n,
                "pad_token_id": tok.pad_id,
            }
            if mode == "sampled":
                kwargs.update(temperature=temperature, top_k=top_k or None)
            elif mode == "beam":
                kwargs.update(num_beams=n)
            with prefix_generation(model) as m:
                gen = m.generate(
                    input_ids=ids.to(device), attention_mask=mask_.to(device), **kwargs
                )
            new = gen[:, width:].cpu().tolist()
            for row, i in enumerate(idx):
                for j in range(n):
                    out[i].append(tok.decode(new[row * n + j]))
    return out


def build_prompts(ctx: ProbeContext, scanner: PiiScanner) -> tuple[list[Prompt], dict[str, str]]:
    """Prompts from the training records (text before each identifier) and generic ones, and
    every identifier in the training data (value -> entity)."""
    cfg = ctx.config.extraction
    tok = ctx.models.tok
    values: dict[str, str] = {}
    by_text: dict[str, Prompt] = {}
    canary_texts = ctx.canary_texts()
    canary_prompts: dict[str, Prompt] = {}
    for text in dict.fromkeys(ctx.train_texts or []):
        for m in scanner.find(text):
            values.setdefault(m.value, m.entity)
            head = text[: m.start]
            if not head.strip():
                continue
            store = canary_prompts if text in canary_texts else by_text
            if head not in store:
                ids = tok.prefix_ids(text, m.start)[-cfg.prompt_tokens :]
                store[head] = Prompt(head, ids, "training_context", 0, cfg.samples_per_prompt)
            store[head].targets.add(m.value)
    for p in list(by_text.values()) + list(canary_prompts.values()):
        # a prompt many identifiers follow (a canary's) gets more beams and samples: greedy
        # decoding alone returns a blend of them, not any one
        p.beams = min(cfg.max_beams, max(cfg.min_beams, cfg.beams_per_target * len(p.targets)))
        if len(p.targets) > 1:
            p.samples = max(p.samples, cfg.generic_samples)
    records = list(by_text.values())
    if len(records) > cfg.max_prompts:
        records = random.Random(cfg.seed).sample(records, cfg.max_prompts)
    generic = [
        Prompt(p, tok.encode(p, special=True), "generic", cfg.min_beams, cfg.generic_samples)
        for p in cfg.generic_prompts
        if p not in by_text and p not in canary_prompts
    ]
    return list(canary_prompts.values()) + records + generic, values


def run_decoding(
    ctx: ProbeContext, model: Any, prompts: list[Prompt]
) -> list[list[tuple[Decoding, str]]]:
    """(decoding, continuation) per prompt: greedy, the best beams, then samples; prompts that
    share a decoding and a count are batched together."""
    cfg = ctx.config.extraction
    tok = ctx.models.tok
    if prompts:
        check_generation(model, tok, prompts[0].ids)
    outs: list[list[tuple[Decoding, str]]] = [[] for _ in prompts]
    groups: dict[tuple[Decoding, int], list[int]] = {}
    for i, p in enumerate(prompts):
        for run in p.runs():
            groups.setdefault(run, []).append(i)
    for (mode, n), idx in sorted(groups.items()):
        texts = generate(
            model,
            tok,
            [prompts[i].ids for i in idx],
            mode=mode,
            n=n,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            seed=cfg.seed + n,
        )
        for i, g in zip(idx, texts, strict=True):
            outs[i] += [(mode, t) for t in g]
        ctx.progress.advance(len(idx) * n)
    return outs


class ExtractionProbe:
    name = "extraction"
    cli_name = "extraction"

    def missing(self, ctx: ProbeContext) -> str | None:
        return None if ctx.train_texts else "no training data given"

    def scanner(self, ctx: ProbeContext) -> PiiScanner:
        formats = [format_by_name(n) for n in ctx.canaries.formats] if ctx.canaries else []
        regex = RegexPiiScanner(formats)
        return CombinedScanner([regex, ctx.scanner]) if ctx.scanner is not None else regex

    def run(self, ctx: ProbeContext) -> ExtractionEvidence:
        cfg = ctx.config.extraction
        scanner = self.scanner(ctx)
        prompts, values = build_prompts(ctx, scanner)
        work = sum(n for p in prompts for _, n in p.runs())
        ctx.progress.start("extraction", work * (2 if ctx.models.has_base else 1))
        ft_out = run_decoding(ctx, ctx.models.model, prompts)
        base_out: list[list[tuple[Decoding, str]]] = [[] for _ in prompts]
        with ctx.models.base() as base_model:
            if base_model is not None:
                base_out = run_decoding(ctx, base_model, prompts)

        def emitted(gens: list[tuple[Decoding, str]]) -> dict[str, Decoding]:
            found: dict[str, Decoding] = {}
            for decoding, text in gens:
                for m in scanner.find(text):
                    found.setdefault(m.value, decoding)
            return found

        attributed: dict[str, tuple[Prompt, Decoding]] = {}
        base_hits: set[str] = set()
        any_ft: set[str] = set()
        targeted = 0
        for p, ft_g, base_g in zip(prompts, ft_out, base_out, strict=True):
            ft_vals, base_vals = emitted(ft_g), emitted(base_g)
            any_ft |= set(ft_vals)
            base_hits |= {v for v in base_vals if v in values}
            new = {v: d for v, d in ft_vals.items() if v in values and v not in base_vals}
            for v, d in new.items():
                attributed.setdefault(v, (p, d))
            targeted += bool(p.targets & set(new))
        included = (
            {c.secret for c in ctx.canaries.canaries if c.included} if ctx.canaries else set()
        )
        controls = (
            {c.secret for c in ctx.canaries.canaries if not c.included} if ctx.canaries else set()
        )
        by_entity: dict[str, dict[str, int]] = defaultdict(lambda: {"t": 0, "m": 0, "b": 0})
        for v, e in values.items():
            by_entity[e]["t"] += 1
            by_entity[e]["m"] += v in attributed
            by_entity[e]["b"] += v in base_hits
        examples = [
            MaskedExample(
                entity=values[v],
                masked_value=mask(v),
                prompt_kind=p.kind,
                decoding=d,
                masked_prompt_tail=masked_tail(p.text, scanner),
                canary=v in included,
            )
            for v, (p, d) in sorted(attributed.items(), key=lambda kv: (values[kv[0]], kv[0]))
        ][: cfg.examples]
        return ExtractionEvidence(
            subject=ctx.subject,
            memorized_identifiers=len(attributed),
            memorized_rate=len(attributed) / len(values) if values else 0.0,
            base_model_matches=len(base_hits),
            pii_values_in_training=len(values),
            targeted_hits=targeted,
            canary_secrets_extracted=len(included & set(attributed)),
            control_secrets_emitted=len(controls & any_ft),
            prompts=len(prompts),
            prompt_sources={
                k: sum(p.kind == k for p in prompts) for k in ("training_context", "generic")
            },
            generations=sum(len(g) for g in ft_out),
            by_entity={
                e: EntityExtraction(
                    pii_values_in_training=c["t"], memorized=c["m"], base_model_matches=c["b"]
                )
                for e, c in sorted(by_entity.items())
            },
            scanner=scanner.name,
            masked_examples=tuple(examples),
            parameters={
                "max_new_tokens": cfg.max_new_tokens,
                "samples_per_prompt": cfg.samples_per_prompt,
                "min_beams": cfg.min_beams,
                "max_beams": cfg.max_beams,
                "generic_samples": cfg.generic_samples,
                "temperature": cfg.temperature,
                "top_k": cfg.top_k,
                "seed": cfg.seed,
                "base_model": ctx.models.has_base,
            },
        )
