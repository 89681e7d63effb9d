"""The architecture matrix: tiny random-init models of real ``transformers`` architectures, each
method (LoRA, IA3, prefix, full) without DP, with DP (hooks) and with DP (ghost clipping).

Every cell either trains (the run completes, the trained model's logits differ from the base
model's, DP cells state an epsilon and pass ``--check-dp``: Opacus's per-sample gradients against
a brute-force loop) or is refused before training with a finetrail error that names the
architecture or the field to change. Nothing else is allowed: no crash, no run that trains
wrong. The expected refusals are listed in :data:`REFUSED`; every other cell must train.

The full matrix is ``slow``; a few cells covering each fix run by default. ``docs/models.md`` is
generated from the full matrix; regenerate it with::

    FINETRAIL_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/training/test_architectures.py -m slow
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from finetrail.errors import FinetrailError
from finetrail.governance.workspace import Workspace
from finetrail.training import train
from finetrail.training.tiny import ARCHITECTURES
from tests.support.tiny_training import base_config, write_config
from tests.training.architecture_models import GQA, UNTIED, tiny_arch

REGEN = os.environ.get("FINETRAIL_REGEN_GOLDEN") == "1"
DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"

METHODS: dict[str, dict[str, Any]] = {
    "lora": {"name": "lora", "rank": 4, "alpha": 8},
    "ia3": {"name": "ia3"},
    "prefix": {"name": "prefix", "num_virtual_tokens": 4},
    "full": {"name": "full"},
}
MODES = ("none", "hooks", "ghost")

# Why a refused cell is refused (the key is matched in the error's text).
REASONS: dict[str, tuple[str, str]] = {
    "flattened": (
        "see a leading dimension of 6 for a batch of 2",
        "the architecture flattens hidden states to (batch x positions, hidden) before these "
        "layers (OPT's fc1/fc2/final_layer_norm, Mixtral's router and experts), so DP-SGD would "
        "clip per token; refused before training. Train a PEFT method on the attention "
        "projections (finetrail's default for these architectures), prefix tuning, or without DP",
    ),
    "tied": (
        "ghost clipping cannot be used with tied trainable parameters",
        "full fine-tuning of tied input/output embeddings: Opacus's ghost clipping cannot clip a "
        "tensor two layers use (upstream limit); use privacy.clipping: hooks or auto",
    ),
}

# (architecture, method, mode) -> reason key. Every cell not listed must train.
REFUSED: dict[tuple[str, str, str], str] = {
    **{(a, "full", "ghost"): "tied" for a in ARCHITECTURES if a not in UNTIED},
    ("opt", "full", "hooks"): "flattened",
    ("mixtral", "full", "hooks"): "flattened",  # its router and experts
    ("mixtral", "full", "ghost"): "flattened",
}


@dataclass(frozen=True)
class Outcome:
    status: str  # "trains" | "refused"
    reason: str | None = None  # a key of REASONS for refusals
    message: str = ""
    adjustments: tuple[str, ...] = ()


def _reason(message: str) -> str:
    for key, (needle, _) in REASONS.items():
        if needle in message:
            return key
    return "unexpected: " + message[:200]


def run_cell(arch: str, method: str, mode: str, base: Path, tmp: Path) -> Outcome:
    """Train one cell (2 steps; ``--check-dp`` for DP cells) and say what happened."""
    import torch

    from finetrail.training.loading import load_trained

    tmp.mkdir(parents=True, exist_ok=True)
    privacy: Any = "none" if mode == "none" else {"clipping": mode}
    cfg = write_config(
        tmp / "train.yaml",
        base_config(base, tmp, method=METHODS[method], privacy=privacy, optim={"steps": 2}),
    )
    ws = Workspace.init(tmp / "ws", model="m", version="1", owner="alice")
    try:
        rec = train(config=cfg, workspace=ws, check_dp=mode != "none")
    except FinetrailError as err:
        assert not (ws.root / "evidence/training.json").exists(), "refused after it started"
        text = f"{err.what} {err.why or ''} {err.fix or ''}"
        return Outcome("refused", _reason(text), err.what)
    assert rec.completed and rec.method == method and rec.dp.steps == 2
    if mode != "none":
        assert rec.dp.enabled and rec.dp.epsilon is not None and rec.dp.epsilon > 0
        assert rec.dp.clipping_mode == mode
        assert rec.dp.check is not None and rec.dp.check.passed, rec.dp.check
    loaded = load_trained(ws.root, device="cpu")
    ids = loaded.tokenizer(["Refund for order 123 please."], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        tuned = loaded.model(input_ids=ids).logits[:, -ids.shape[1] :]
        plain = loaded.base_model(input_ids=ids).logits
    assert not torch.allclose(tuned, plain), "the trained weights did not change the model"
    return Outcome("trains", adjustments=rec.dp.adjustments)


def expected(arch: str, method: str, mode: str) -> Outcome:
    key = REFUSED.get((arch, method, mode))
    return Outcome("trains") if key is None else Outcome("refused", key)


def _check(arch: str, method: str, mode: str, factory: pytest.TempPathFactory) -> Outcome:
    base = tiny_arch(arch, factory)
    tmp = factory.mktemp(f"{arch}-{method}-{mode}")
    try:
        got = run_cell(arch, method, mode, base, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    want = expected(arch, method, mode)
    assert (got.status, got.reason) == (want.status, want.reason), got.message
    if got.status == "refused":
        assert arch in got.message or "privacy.clipping" in got.message or method in got.message
    return got


# ---- a few cells by default: one per fix, and each kind of refusal ---------------------------

DEFAULT_CELLS = [
    ("llama", "lora", "hooks"),  # grouped-query attention, tied embeddings
    ("opt", "lora", "hooks"),  # finetrail's attention-only default for OPT
    ("opt", "full", "hooks"),  # refused: flattened feed-forward
    ("phi3", "ia3", "ghost"),  # finetrail's IA3 default for Phi-3 (peft has none)
    ("gemma2", "full", "hooks"),  # the scaled word embedding's per-sample rule
    ("falcon", "ia3", "hooks"),  # the in-place add on a hooked layer's output
    ("falcon", "prefix", "none"),  # the prefix sized to Falcon's one key/value head
    ("gpt2", "full", "ghost"),  # refused: ghost clipping with tied embeddings
]


@pytest.mark.parametrize(
    ("arch", "method", "mode"), DEFAULT_CELLS, ids=["-".join(c) for c in DEFAULT_CELLS]
)
def test_default_cells(
    arch: str, method: str, mode: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _check(arch, method, mode, tmp_path_factory)


# ---- the full matrix and the support table it generates --------------------------------------

CELLS = [(a, m, d) for a in ARCHITECTURES for m in METHODS for d in MODES]
_RESULTS: dict[tuple[str, str, str], Outcome] = {}


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "method", "mode"), CELLS, ids=["-".join(c) for c in CELLS])
def test_matrix(
    arch: str, method: str, mode: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _RESULTS[(arch, method, mode)] = _check(arch, method, mode, tmp_path_factory)


def render(results: dict[tuple[str, str, str], Outcome]) -> str:
    """``docs/models.md`` from the matrix's outcomes."""
    from importlib.metadata import version

    from finetrail.training.architectures import TARGET_DEFAULTS

    marks = {"trains": "yes"}
    refs = {key: i + 1 for i, key in enumerate(REASONS)}
    lines = [
        "# Supported model architectures",
        "",
        "<!-- generated by tests/training/test_architectures.py; regenerate with",
        "     FINETRAIL_REGEN_GOLDEN=1 .venv/bin/python -m pytest "
        "tests/training/test_architectures.py -m slow -->",
        "",
        "Each cell is one fine-tuning run of a tiny random-init model of the architecture (2 "
        "layers, width 32, built from its `transformers` config class and saved with "
        "`save_pretrained`), 2 steps. **yes**: the run completed, the trained model's output "
        "differs from the base model's, and DP runs stated an epsilon and passed `--check-dp` "
        "(Opacus's per-sample gradients against a brute-force per-example loop, relative error "
        "at most 1e-5). **refused (n)**: finetrail refused the run before training, with a "
        "message naming the architecture and what to do instead (note n below). No cell crashes "
        "or trains silently wrong; the test fails if one does.",
        "",
        "Before every DP run finetrail checks, on a synthetic batch, that every layer Opacus "
        "hooks sees the batch as its leading dimension; at the first step it checks every "
        "per-sample gradient against the batch and Opacus's clipped sum against one clip per "
        "example. These checks are always on.",
        "",
        "Measured with "
        + ", ".join(f"{p} {version(p)}" for p in ("torch", "transformers", "peft", "opacus"))
        + ".",
        "",
        "| architecture (`model_type`) | "
        + " | ".join(f"{m} {d}" for m in METHODS for d in ("no DP", "DP hooks", "DP ghost"))
        + " |",
        "|---|" + "---|" * (len(METHODS) * len(MODES)),
    ]
    for arch in ARCHITECTURES:
        shape = []
        if arch in GQA:
            shape.append("GQA")
        shape.append("untied" if arch in UNTIED else "tied embeddings")
        cells = []
        for m in METHODS:
            for d in MODES:
                o = results[(arch, m, d)]
                cells.append(marks.get(o.status) or f"refused ({refs[str(o.reason)]})")
        lines.append(f"| `{arch}` ({', '.join(shape)}) | " + " | ".join(cells) + " |")
    lines += ["", "## Notes", ""]
    for key, (_, text) in REASONS.items():
        lines.append(f"{refs[key]}. {text}.")
    lines += [
        "",
        "## Target modules finetrail chooses",
        "",
        "When the config leaves `method.target_modules` unset, LoRA targets every linear layer "
        "(`all-linear`) and IA3 uses peft's default for the architecture, except:",
        "",
        "| architecture | method | target modules | IA3 feed-forward | why |",
        "|---|---|---|---|---|",
    ]
    for arch, by_method in TARGET_DEFAULTS.items():
        for method, (targets, ff, why) in by_method.items():
            ffs = ", ".join(f"`{f}`" for f in ff) if method == "ia3" else ""
            lines.append(
                f"| `{arch}` | {method} | {', '.join(f'`{t}`' for t in targets)} | "
                f"{ffs or ('none' if method == 'ia3' else '')} | {why} |"
            )
    lines += [
        "",
        "The same defaults apply with and without DP, so a DP run and its non-private control "
        "differ by DP only; the run's evidence states the choice (`dp.adjustments`). Setting "
        "`method.target_modules` explicitly overrides them; under DP a layer that sees "
        "flattened hidden states is then refused.",
        "",
        "## Fixed in finetrail",
        "",
        "- Phi-3 IA3: peft has no default target modules; finetrail's are above.",
        "- Gemma 2 / Gemma 3 full fine-tuning under DP: the scaled word embedding keeps its "
        "constant scale in a buffer, which Opacus refuses on a trainable layer; finetrail holds "
        "it as a plain tensor and gives the layer a per-sample gradient rule (the embedding rule "
        "on the scaled backprop).",
        "- Falcon IA3 and full fine-tuning under DP: the decoder layer adds to the MLP's output "
        "in place, which autograd forbids on the view Opacus's backward hook returns; finetrail "
        "copies that output (same values). `FalconLinear` gets Opacus's `nn.Linear` rule.",
        "- Falcon prefix tuning: peft sizes the prefix for every attention head; Falcon's "
        "multi-query attention keeps one key/value head, so finetrail sizes it to that.",
        "- A tokenizer with more tokens than the model's embedding (`AutoTokenizer` may add a "
        "pad token the model never had) is refused before training instead of failing with "
        "an index error.",
        "- Prefix tuning, probes: under transformers 5 `generate()` dropped peft's prefix (the "
        "extraction probe measured the base model, to 2e-7); finetrail passes the prefix as the "
        "generation cache and checks `generate()` against the forward pass before decoding.",
        "",
    ]
    return "\n".join(lines)


@pytest.mark.slow
def test_the_support_table_in_docs_is_generated_from_the_matrix(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    for cell in CELLS:  # the cells a -k selection skipped
        if cell not in _RESULTS:
            _RESULTS[cell] = _check(*cell, tmp_path_factory)
    text = render(_RESULTS)
    if REGEN:
        DOC.write_text(text, encoding="utf-8")
    assert DOC.is_file(), "no docs/models.md; run with FINETRAIL_REGEN_GOLDEN=1 to create it"

    # the library versions line says what the table was measured with; the cells must match
    # whatever versions CI installs, so that one line is compared without its numbers
    def cells(doc: str) -> str:
        return re.sub(r"^Measured with .*$", "Measured with <versions>.", doc, flags=re.M)

    assert cells(DOC.read_text(encoding="utf-8")) == cells(text), (
        "docs/models.md differs from the matrix; regenerate with FINETRAIL_REGEN_GOLDEN=1"
    )
