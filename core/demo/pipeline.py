"""``finetrail demo``: the whole pipeline on synthetic data, offline, as a user would run it.

Every step is a ``finetrail`` command run in-process (each is printed before it runs), so the
demo is also a script of the commands a team would use:

1. generate the synthetic data (support notes with PII, a credit task with a planted disparity,
   a generic corpus); build or reuse the tiny base model;
2. for a non-private control and a DP model (LoRA, epsilon about 1), each in its own workspace:
   register and scan the data; the DP release sanitises the notes and the credit task and trains
   on the sanitised copies (the control on the raw data); plant canaries (60 bigram canaries, each
   inserted once: the black-box audit's ceiling is 2.52, above the DP claim), fine-tune, run the
   probes and the bias audit, run the gate (``eu-ai-act-high-risk``), tag the registered version
   from its decision (``registry promote``), render the dossier, verify; with ``--plant-bug
   NAME`` a third release, the DP one's twin trained with that mechanism bug planted;
3. render the compliance diff between the control and the DP release, print a summary table
   and, for a planted bug, whether the gate refused the broken release on the mechanism rules.

``--quick`` shrinks every size (CI runs it): about 150 s on an idle 2-core machine with two torch
threads; with one (as now) 78 s before the 60-canary plan and 87 s after, one after the other on
a shared machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from finetrail.demo.summary import collect, print_summary
from finetrail.errors import CheckFailed, InputError
from finetrail.governance.io import atomic_write_bytes, atomic_write_text, canonical_json
from finetrail.training.mechanism_bugs import PLANTED_BUGS

MODEL = "support-assistant"
POLICY = "eu-ai-act-high-risk"


@dataclass(frozen=True)
class Sizes:
    records: int
    task_records: int
    eval_records: int
    public_records: int
    base_steps: int
    canaries: int
    canary_design: str  # canaries plant --design
    canary_repetitions: str  # canaries plant --repetitions
    control_steps: int
    control_batch: int
    control_lr: float
    dp_epochs: float
    dp_batch: int
    bias_resamples: int


FULL = Sizes(
    records=1000,
    task_records=600,
    eval_records=600,
    public_records=2000,
    base_steps=450,
    canaries=60,
    canary_design="bigram",
    canary_repetitions="1",
    control_steps=600,
    control_batch=16,
    control_lr=3e-3,
    dp_epochs=3.0,
    dp_batch=64,
    bias_resamples=400,
)
QUICK = Sizes(
    records=200,
    task_records=120,
    eval_records=200,
    public_records=300,
    base_steps=40,
    canaries=60,
    canary_design="bigram",
    canary_repetitions="1",
    control_steps=120,
    control_batch=32,
    control_lr=3e-3,
    dp_epochs=1.0,
    dp_batch=32,
    bias_resamples=100,
)


QUICK_PROBES: dict[str, Any] = {
    "extraction": {
        "max_prompts": 40,
        "samples_per_prompt": 2,
        "max_beams": 8,
        "generic_samples": 8,
    },
    "membership": {"max_examples": 100, "bootstrap": 100},
}
# Both demos: the one-run audit scores each canary by its log-likelihood under the fine-tuned
# model alone. On the demo's bigram canaries, subtracting the base model's log-likelihood (the
# probes' default calibration) separated inserted from absent canaries less well in every
# training setting measured before this choice was fixed (docs/memorisation.md, "The demo's
# canary plan"): the base model's preference among random word pairs is noise here.
DEMO_PROBES: dict[str, Any] = {"dp_audit": {"calibrate_with_base": False}}


@dataclass
class Variant:
    name: str  # "control", "dp" or the planted-bug twin
    workspace: Path
    private: bool
    planted_bug: str | None = None  # training/mechanism_bugs.py PLANTED_BUGS name
    results: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoResult:
    out: Path
    variants: list[Variant]
    diff_path: Path | None
    seconds: float


Runner = Callable[[Sequence[str]], int]


# The role each demo step acts as (governance/trust.py ``event_role``: the entries it writes
# need that role's key): canaries.*, probes.* and bias.* are the probe job's, gate.* the CI gate's,
# everything else (workspace, data, training, report events) the training job's.
STEP_ROLES: dict[str, str] = {
    "canaries": "probes",
    "probe": "probes",
    "audit": "probes",
    "gate": "gate",
    "registry": "gate",
}
ROLE_KEYS: dict[str, str] = {"training": "training-job", "probes": "probe-job", "gate": "ci"}


def step_role(args: Sequence[Any]) -> str:
    """The trust role a ``finetrail`` command of the demo acts as."""
    return STEP_ROLES.get(str(args[0]) if args else "", "training")


def _runner(echo: Callable[[str], None], role_keys: dict[str, Path] | None = None) -> Runner:
    """Run ``finetrail`` commands in-process, each with ``FINETRAIL_LEDGER_KEY`` set to the key
    of the role it acts as (``role_keys``, filled once the demo's keys exist) and never in
    development mode (``FINETRAIL_DEV_UNSIGNED`` removed for the call, even if the caller set it)."""
    from finetrail.cli import main
    from finetrail.governance import keys

    held = role_keys if role_keys is not None else {}

    def run(args: Sequence[str]) -> int:
        echo("$ finetrail " + " ".join(shlex.quote(str(a)) for a in args))
        key = held.get(step_role(args))
        saved = {n: os.environ.get(n) for n in (keys.LEDGER_KEY_ENV, keys.DEV_UNSIGNED_ENV)}
        os.environ.pop(keys.DEV_UNSIGNED_ENV, None)
        if key is not None:
            os.environ[keys.LEDGER_KEY_ENV] = str(key)
        else:
            os.environ.pop(keys.LEDGER_KEY_ENV, None)
        t0 = time.perf_counter()
        try:
            with keys.development_mode(False):
                code = main([str(a) for a in args])
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        echo(f"  ({time.perf_counter() - t0:.1f} s, exit {code})")
        return code

    return run


def _must(run: Runner, args: Sequence[str], ok: tuple[int, ...] = (0,)) -> int:
    code = run(args)
    if code not in ok:
        raise CheckFailed(
            f"demo step failed (exit {code}): finetrail {' '.join(str(a) for a in args)}",
            fix="rerun with `finetrail --debug demo ...` to see the traceback",
        )
    return code


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    atomic_write_bytes(path, b"".join(canonical_json(r) for r in rows))


def _chat(user: str, assistant: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]
    }


def _prepare_training_file(
    *, notes: Path, task_train: Path, task_eval: Path, out: Path, data_format: str = "text"
) -> tuple[Path, Path, Path]:
    """Split the support notes: 70% into the fine-tuning set (with the credit task as text),
    15% for validation loss, 15% held out as non-members for membership inference.

    The held-out set has the fine-tuning set's mix: the held-out notes plus credit applications
    the model never saw (from the evaluation split) in the same proportion. Notes alone would
    differ in kind from the members, and the attacks would measure that difference. The files are
    the ones the variant trains on (raw for the control, sanitised for the DP release).

    ``data_format="chat"`` writes the same records as conversations (TRL's ``messages``): a note
    is the user's ticket and the assistant's reply records it (the identifiers are in the reply,
    where the completion-only loss is taken); a credit application is the user's prompt and the
    assistant's reply its label.
    """
    chat = data_format == "chat"
    rows = [
        _chat(r["text"], f"Noted on the account: {r['text']}") if chat else {"text": r["text"]}
        for r in _jsonl(notes)
    ]
    a, b = int(len(rows) * 0.70), int(len(rows) * 0.85)

    def as_text(path: Path) -> list[dict[str, Any]]:
        if chat:
            return [_chat(str(r["prompt"]), str(r["label"])) for r in _jsonl(path)]
        return [{"text": f"{r['prompt']} {r['label']}"} for r in _jsonl(path)]

    task = as_text(task_train)
    unseen_task = as_text(task_eval)
    held_notes = rows[b:]
    held_task = unseen_task[: round(len(held_notes) * len(task) / max(1, a))]
    finetune, validation, heldout = (
        out / n for n in ("finetune.jsonl", "validation.jsonl", "heldout.jsonl")
    )
    _write_jsonl(finetune, rows[:a] + task)
    _write_jsonl(validation, rows[a:b])
    _write_jsonl(heldout, held_notes + held_task)
    return finetune, validation, heldout


def _scan_args() -> list[str]:
    """How the demo scans: Presidio with finetrail's pattern table and no NER model, so it runs
    in seconds. Its PERSON recall is near 0 (docs/pii-accuracy.md; the scan evidence carries the
    measured figures): real data needs ``--ner`` (``pip install 'finetrail[pii-ner]'``)."""
    return ["--scan"]


def _train_config(
    variant: Variant,
    *,
    base: Path,
    train: Path,
    val: Path,
    generic: Path,
    sizes: Sizes,
    seed: int,
    data_format: str = "text",
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "train": str(train),
        "validation": str(val),
        "generic": str(generic),
        "generic_fraction": 0.05,
        "max_length": 96,
        "unregistered": "refuse",
    }
    if data_format == "chat":
        # conversations (loss on the assistant turns only); the generic corpus is plain text,
        # which a chat run does not mix in; a reply repeats its note, so records are longer: the
        # base model's whole context (training records any record it truncates)
        data = {k: v for k, v in data.items() if not k.startswith("generic")}
        data.update(format="messages", loss_on="completion", max_length=128)
    common: dict[str, Any] = {
        "base_model": {"path": str(base), "name": "finetrail-demo-tiny-llama"},
        "data": data,
        "device": "cpu",
        "seed": seed,
        "cost": {"price_per_device_hour": 0.05, "currency": "USD"},
    }
    if variant.private:
        common["method"] = {"name": "lora", "rank": 16, "alpha": 32, "target_modules": "all-linear"}
        common["privacy"] = {"target_epsilon": 1.0, "delta": 1e-5, "max_grad_norm": 1.0}
        common["optim"] = {
            "batch_size": sizes.dp_batch,
            "epochs": sizes.dp_epochs,
            "learning_rate": 3e-3,
        }
    else:
        # The control is the strongest memoriser we measured on this model (docs/memorisation.md):
        # full fine-tuning without DP. Non-private LoRA memorised much less in the same budget.
        common["method"] = {"name": "full"}
        common["privacy"] = "none"
        # --quick: 120 steps of 32 at lr 3e-3 (about 13 epochs) is the cheapest budget measured
        # where the black-box audit's bound on the control is clearly above 0 (docs/memorisation.md,
        # "The demo's canary plan"); fewer epochs, or lr 1e-2, left it at 0 or near it
        common["optim"] = {
            "batch_size": sizes.control_batch,
            "steps": sizes.control_steps,
            "learning_rate": sizes.control_lr,
        }
    return common


def run_demo(
    *,
    out: str | os.PathLike[str],
    quick: bool = False,
    seed: int = 0,
    echo: Callable[[str], None] = click.echo,
    data_format: str = "text",
    plant_bug: str | None = None,
    progress: bool = False,
) -> DemoResult:
    """Run the whole pipeline into ``out``; returns where everything is. ``data_format="chat"``
    fine-tunes on conversations (user: ticket, assistant: reply) with the loss on the replies.

    ``plant_bug`` (a :data:`~finetrail.training.mechanism_bugs.PLANTED_BUGS` name) adds a third
    release, the DP release's twin trained with that mechanism bug planted (``finetrail train
    --plant-mechanism-bug``): its evidence states the same planned epsilon, its mechanism audit
    must reject it and the gate refuse it. ``progress`` shows the steps' bars on stderr."""
    if plant_bug is not None and plant_bug not in PLANTED_BUGS:
        raise InputError(
            f"unknown planted mechanism bug {plant_bug!r}",
            field="plant_bug",
            fix=f"choose from {', '.join(PLANTED_BUGS)}",
        )
    with _one_torch_thread():
        return _run_demo(
            out=out,
            quick=quick,
            seed=seed,
            echo=echo,
            data_format=data_format,
            plant_bug=plant_bug,
            progress=progress,
        )


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch with one intra-op thread, as the tests do (tests/conftest.py): the demo's figures
    then repeat from run to run on one machine. The quick control's black-box bound depends on
    the float path: 0.160 with one thread, 0.000 with two (docs/memorisation.md)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_demo(
    *,
    out: str | os.PathLike[str],
    quick: bool,
    seed: int,
    echo: Callable[[str], None],
    data_format: str,
    plant_bug: str | None,
    progress: bool,
) -> DemoResult:
    t0 = time.perf_counter()
    sizes = QUICK if quick else FULL
    root = Path(out).resolve()
    role_keys: dict[str, Path] = {}
    run = _runner(echo, role_keys)
    data = root / "data"
    base = root / "base-model"
    work = root / "work"
    dossiers = root / "dossiers" / MODEL

    echo("== 1. synthetic data and the tiny base model")
    _must(
        run,
        [
            "synth",
            data,
            "--seed",
            seed,
            "--records",
            sizes.records,
            "--task-records",
            sizes.task_records,
            "--eval-records",
            sizes.eval_records,
            "--public-records",
            sizes.public_records,
            "--disparity",
            0.2,
        ],
    )
    _must(
        run,
        [
            "base-model",
            "build",
            base,
            "--seed",
            seed,
            *(["--quick"] if quick else ["--steps", sizes.base_steps]),
        ],
    )
    role_keys |= _trust_root(run, root, echo)
    signing_key, trust = role_keys["gate"], root / "trust.yaml"

    variants = [
        Variant("control (full FT, no DP)", dossiers / "1.0.0-control", private=False),
        Variant("DP LoRA (eps 1)", dossiers / "1.0.0-dp", private=True),
    ]
    if plant_bug is not None:
        # the DP release's twin, same data, plan and claim, with a broken mechanism planted
        variants.append(
            Variant(
                f"DP LoRA, planted {plant_bug}",
                dossiers / "1.0.0-dp-planted-bug",
                private=True,
                planted_bug=plant_bug,
            )
        )
    for variant in variants:
        ws = variant.workspace
        side = work / variant.workspace.name
        side.mkdir(parents=True, exist_ok=True)
        echo(f"== 2. {variant.name}")
        if not (ws / "workspace.json").exists():
            _must(
                run,
                [
                    "init",
                    ws,
                    "--model",
                    MODEL,
                    "--version",
                    ws.name,
                    "--owner",
                    "ml-platform-team",
                    "--provider",
                    "Example Bank plc",
                    "--purpose",
                    "Drafting replies to customer-support tickets and pre-screening "
                    "credit applications for human review",
                    "--description",
                    "Tiny demo assistant fine-tuned on synthetic support notes",
                ],
            )
        for ds in _register_raw_args(ws, data):
            _must(run, ds)
        notes, task_train, task_eval, generic = (
            data / "domain.jsonl",
            data / "task_train.jsonl",
            data / "task_eval.jsonl",
            data / "generic.jsonl",
        )
        names = {"notes": "support-notes", "task": "credit-task-train"}
        if variant.private:
            # the DP release learns from sanitised copies (the control from the raw data): the
            # sanitiser re-scans what it wrote and fails if any engine still finds PII
            sanitised = {
                "support-notes": side / "domain.sanitized.jsonl",
                "credit-task-train": side / "task_train.sanitized.jsonl",
                "credit-task-eval": side / "task_eval.sanitized.jsonl",
                "generic-corpus": side / "generic.sanitized.jsonl",
            }
            sources = {
                "support-notes": notes,
                "credit-task-train": task_train,
                "credit-task-eval": task_eval,
                "generic-corpus": generic,
            }
            for name, target in sanitised.items():
                _must(
                    run,
                    [
                        "data",
                        "sanitize",
                        ws,
                        name,
                        "--input",
                        sources[name],
                        "--output",
                        target,
                        "--operator",
                        "replace",
                        "--name",
                        f"{name}-sanitised",
                    ],
                )
            notes, task_train, task_eval, generic = (
                sanitised["support-notes"],
                sanitised["credit-task-train"],
                sanitised["credit-task-eval"],
                sanitised["generic-corpus"],
            )
            names = {"notes": "support-notes-sanitised", "task": "credit-task-train-sanitised"}
        variant.results["eval_file"] = task_eval
        finetune, validation, heldout = _prepare_training_file(
            notes=notes,
            task_train=task_train,
            task_eval=task_eval,
            out=side,
            data_format=data_format,
        )
        for ds in _register_mix_args(ws, finetune, validation, names):
            _must(run, ds)
        augmented = plant_canaries(
            run, ws, finetune, side, sizes=sizes, seed=seed, data_format=data_format
        )
        config = side / "train.yaml"
        import yaml

        cfg = _train_config(
            variant,
            base=base,
            train=augmented,
            val=validation,
            generic=generic,
            sizes=sizes,
            seed=seed,
            data_format=data_format,
        )
        atomic_write_text(config, yaml.safe_dump(cfg, sort_keys=False))
        train_args: list[Any] = ["train", ws, config, "--progress" if progress else "--no-progress"]
        if variant.planted_bug is not None:
            train_args += ["--plant-mechanism-bug", variant.planted_bug]
        code = _must(run, train_args, ok=(0, 1, 2) if variant.planted_bug else (0,))
        if code != 0:
            # finetrail's own checks while training (the DP guards, plan = execution) refused it:
            # the bug never reaches a release (their error is printed above)
            variant.results["refused_at_training"] = code
            continue
        probe_args: list[Any] = ["probe", ws, "--heldout-data", heldout]
        if not progress:
            probe_args.append("--no-progress")
        # quick: fewer prompts, beams and bootstrap resamples (same probes, smaller sample)
        probe_cfg = side / "probes.yaml"
        settings = {**DEMO_PROBES, **(QUICK_PROBES if quick else {})}
        atomic_write_text(probe_cfg, yaml.safe_dump(settings, sort_keys=False))
        probe_args += ["--config", probe_cfg]
        _must(run, probe_args)
        _must(
            run,
            [
                "audit",
                "bias",
                ws,
                "--eval",
                variant.results.pop("eval_file"),
                "--sensitive",
                "gender,age_band",
                "--resamples",
                sizes.bias_resamples,
                "--seed",
                seed,
            ],
        )
        gate_code = _must(
            run,
            [
                "gate",
                ws,
                "--policy",
                POLICY,
                "--junit",
                side / "gate.junit.xml",
                "--sarif",
                side / "gate.sarif",
                "--signing-key",
                signing_key,
                "--trust",
                trust,
            ],
            ok=(0, 1),
        )
        # the gate tags nothing; the registry step reads its signed decision (imports mlflow)
        _must(run, ["registry", "promote", ws, "--trust", trust], ok=(0, 1))
        variant.results["gate_code"] = gate_code
    # the DP release's dossier carries the diff against the control
    control, dp = variants[:2]
    released = [v for v in variants if not v.results.get("refused_at_training")]
    for variant in released:
        args: list[Any] = ["report", variant.workspace]
        if variant is dp:
            args += ["--compare", control.workspace]
        _must(run, args, ok=(0, 1))
    diff_path = root / "diff-control-vs-dp.txt"
    echo("== 3. compliance diff, verify")
    from finetrail.reports.api import compare_workspaces

    diff = compare_workspaces(before=control.workspace, after=dp.workspace)
    atomic_write_text(diff_path, diff.render_text() if hasattr(diff, "render_text") else str(diff))
    for variant in released:
        verify_code = _must(run, ["verify", variant.workspace, "--trust", trust], ok=(0, 1))
        collect(variant, variant.results.pop("gate_code"), verify_code)
    took = time.perf_counter() - t0
    result = DemoResult(out=root, variants=variants, diff_path=diff_path, seconds=took)
    print_summary(result, echo)
    return result


def _trust_root(run: Runner, root: Path, echo: Callable[[str], None]) -> dict[str, Path]:
    """One Ed25519 key per role the demo acts in (training job, probe job, CI gate: the gate key
    also signs the attestations) and the trust file ``root/trust.yaml`` that names them by role,
    all outside the workspaces they judge (in a team: each key with its job, the gate key in the
    CI secret store, the trust file in the repository; docs/security.md). Returns role -> key."""
    from datetime import timedelta

    from finetrail.governance import keys
    from finetrail.governance.clock import now, release_now

    key_dir = root / "keys"
    files: dict[str, Path] = {}
    lines = [
        "# finetrail trust root for the demo: who may sign what (docs/security.md)",
        "finetrail_trust: 1",
    ]
    # the window brackets the records' clock (FINETRAIL_FIXED_TIME may pin it) and the real one
    times = (now(), release_now())
    start = (min(times) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    end = (max(times) + timedelta(days=365)).isoformat().replace("+00:00", "Z")
    for role, name in ROLE_KEYS.items():
        key_file = key_dir / f"{name}.key"
        if not key_file.exists():
            _must(run, ["keys", "generate", "--reviewer", name, "--out", key_dir])
        public = keys.load_public_key(key_dir / f"{name}.pub")
        files[role] = key_file
        lines += [
            f"{role}:",
            f"  - name: {name}",
            f"    public_key: {keys.public_b64(public)}",
            f"    not_before: {start}",
            f"    not_after: {end}",
        ]
        echo(f"{role} key {name} (keyid {keys.keyid_of(public)[:16]})")
    trust = root / "trust.yaml"
    atomic_write_text(trust, "\n".join([*lines, "reviewers: []", ""]))
    echo(f"trust root: {trust}")
    return files


def plant_canaries(
    run: Runner,
    ws: Path,
    finetune: Path,
    side: Path,
    *,
    sizes: Sizes,
    seed: int,
    data_format: str = "text",
) -> Path:
    """Plant canaries into the fine-tuning set (in its format) and register the result as a
    derived dataset."""
    augmented = side / "finetune+canaries.jsonl"
    _must(run, ["canaries", "plant", ws, "--data", finetune, "--out", augmented,
                "--m", sizes.canaries, "--seed", seed + 7,
                "--design", sizes.canary_design, "--repetitions", sizes.canary_repetitions,
                "--data-format", data_format])  # fmt: skip
    _must(run, ["data", "register", ws, augmented, "--name", "finetune+canaries",
                "--source", "finetrail canaries plant", "--license", "CC0-1.0",
                "--collection", "support notes and credit task with planted canaries",
                "--legal-basis", "synthetic data (no personal data)",
                "--purpose", "fine-tuning with a memorisation audit",
                "--derived-from", "finetune-mix", "--transform", "canaries",
                *_scan_args()])  # fmt: skip
    return augmented


def _common(ws: Path) -> list[Any]:
    return [
        "--source",
        "synthetic://finetrail-demo (Faker, seed 0)",
        "--license",
        "CC0-1.0",
        "--legal-basis",
        "synthetic data (no real persons)",
    ]


def _register_raw_args(ws: Path, data: Path) -> list[list[Any]]:
    """The generated files, each registered and scanned."""
    scan = _scan_args()
    return [
        [
            "data",
            "register",
            ws,
            data / "domain.jsonl",
            *_common(ws),
            "--name",
            "support-notes",
            *scan,
            "--collection",
            "generated customer-support notes with realistic PII",
            "--purpose",
            "fine-tuning the support assistant",
        ],
        [
            "data",
            "register",
            ws,
            data / "task_train.jsonl",
            *_common(ws),
            "--name",
            "credit-task-train",
            *scan,
            "--collection",
            "generated credit applications with a planted disparity of 0.2",
            "--purpose",
            "fine-tuning the pre-screening task",
        ],
        [
            "data",
            "register",
            ws,
            data / "task_eval.jsonl",
            *_common(ws),
            "--name",
            "credit-task-eval",
            *scan,
            "--collection",
            "generated credit applications (held-out split) with the same planted disparity",
            "--purpose",
            "evaluation: task accuracy and the bias audit",
        ],
        [
            "data",
            "register",
            ws,
            data / "generic.jsonl",
            "--name",
            "generic-corpus",
            *scan,
            "--source",
            "CPython standard library docstrings and pydoc topics; public-style notes",
            "--license",
            "PSF-2.0",
            "--legal-basis",
            "public documentation; synthetic notes",
            "--collection",
            "read from the installed Python with ast (no download)",
            "--purpose",
            "pretraining the base model; 5% mixing against forgetting",
        ],
    ]


def _register_mix_args(
    ws: Path, finetune: Path, validation: Path, names: dict[str, str]
) -> list[list[Any]]:
    """The fine-tuning mix and the validation split, derived from the files the variant trains
    on, and scanned themselves (a clean parent does not make a derived set clean)."""
    scan = _scan_args()
    return [
        [
            "data",
            "register",
            ws,
            validation,
            *_common(ws),
            "--name",
            "support-notes-validation",
            *scan,
            "--collection",
            f"15% split of {names['notes']}",
            "--purpose",
            "validation loss",
            "--derived-from",
            names["notes"],
            "--transform",
            "split",
            "--transform-params",
            '{"train": 0.70, "validation": 0.15, "heldout": 0.15}',
        ],
        [
            "data",
            "register",
            ws,
            finetune,
            *_common(ws),
            "--name",
            "finetune-mix",
            *scan,
            "--collection",
            f"70% of {names['notes']} + {names['task']} rendered as text",
            "--purpose",
            "fine-tuning",
            "--derived-from",
            names["notes"],
            "--derived-from",
            names["task"],
            "--transform",
            "split+concatenate",
            "--transform-params",
            '{"notes_fraction": 0.70, "task": "prompt + label"}',
        ],
    ]


@click.command("demo")
@click.option(
    "--out",
    default="demo-out",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder (data, base model, workspaces, dossiers).",
)
@click.option(
    "--quick",
    is_flag=True,
    help="Small sizes, too small to be useful (CI runs this): about 150 s on an idle 2-core "
    "machine with two torch threads (87 s measured with one, as it now runs, on a shared one), "
    "several times that on a busy one; the demo prints its time at the end.",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of data, model and runs."
)
@click.option(
    "--data-format",
    type=click.Choice(["text", "chat"]),
    default="text",
    show_default=True,
    help="text: plain records; chat: conversations (user: ticket, assistant: reply; the loss "
    "on the replies only), chat canaries and probes in the chat rendering.",
)
@click.option(
    "--plant-bug",
    type=click.Choice(sorted(PLANTED_BUGS)),
    default=None,
    help="Also train a third release, the DP release's twin with this DP mechanism bug planted "
    "(its evidence claims the same epsilon): its mechanism audit rejects it and the gate refuses "
    "it. A demonstration of the DP check's power; never for a real release.",
)
@click.option(
    "--progress/--no-progress",
    "progress",
    default=None,
    help="The steps' progress bars on stderr (default: shown when stderr is a terminal).",
)
def demo_cmd(
    out: str,
    quick: bool,
    seed: int,
    data_format: str,
    plant_bug: str | None,
    progress: bool | None,
) -> int:
    """Run the whole pipeline on synthetic data: train a non-private control and a DP model,
    probe, audit, gate, render both dossiers and the diff, verify."""
    from finetrail.extras import require_extra

    require_extra("train", "data", "audit", "reports", command="demo")
    run_demo(
        out=out,
        quick=quick,
        seed=seed,
        data_format=data_format,
        plant_bug=plant_bug,
        progress=_stderr_is_terminal() if progress is None else progress,
    )
    return 0


def _stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def register(group: click.Group) -> None:
    group.add_command(demo_cmd)
