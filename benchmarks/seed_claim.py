"""The source's headline, measured: "DP at epsilon 0.5 removed 97% of memorised identifiers while
keeping 91% of task F1".

Data (generated, seeded; nothing downloaded): support tickets "Ticket from NAME (SSN
AAA-GG-SSSS): COMPLAINT Category: LABEL". Each synthetic customer (Faker name, a random valid
SSN-format number) writes several tickets; the complaint is drawn from phrases of one of four
categories. Two things are measured on the same fine-tuning data:

- memorised identifiers: finetrail's extraction probe (``finetrail probe --only extraction``:
  every training context before an identifier, greedy, beam and sampled decoding, attributed to
  the fine-tune only when the base model does not emit it) on each trained workspace;
  ``memorized_identifiers / pii_values_in_training``. "Removed" = 1 - DP / control.
- task F1: macro F1 of the four-way category, on held-out tickets of other customers, the label
  the model scores highest after "Category:" (log-probability of each label's tokens). "Kept" =
  F1 DP / F1 control.

The base model is pretrained by this script from scratch on generated tickets of other customers
(no category line, so the task is new to it), unless ``--base-model`` names a folder. Both runs go
through finetrail's own training path (``finetrail.training.train`` on a workspace, evidence
written): the non-private control and DP-SGD at ``--epsilon`` (0.5; delta 1e-5, PRV, clip 1.0),
the same method and data.

    python benchmarks/seed_claim.py --threads 1 --write-doc docs/tradeoff.md   # CPU scale
    python benchmarks/seed_claim.py --smoke                                    # seconds
    python benchmarks/seed_claim.py --device cuda                              # >= 100M params
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CATEGORIES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice for the same invoice this month.",
        "The amount on my bill is higher than the price I agreed to.",
        "My card was debited although the payment had already gone through.",
        "Please explain the extra fee on my latest statement.",
        "The invoice lists a plan I never subscribed to.",
        "I keep getting billed after I changed my payment method.",
    ),
    "delivery": (
        "My parcel has not arrived and the tracking has not moved for a week.",
        "The courier left the package at the wrong address.",
        "The order was marked delivered but nothing came to my door.",
        "The box arrived damaged and half of the items are missing.",
        "Shipping was promised in two days and it is now late by ten.",
        "The delivery driver never rang and took the parcel back.",
    ),
    "login": (
        "I cannot sign in to my account since the last update.",
        "The password reset link expires before I can open it.",
        "My account is locked after too many attempts to log in.",
        "The two factor code never reaches my phone.",
        "The app says my username does not exist.",
        "I am logged out every time I close the browser.",
    ),
    "refund": (
        "I returned the item three weeks ago and still have no refund.",
        "Please send my money back for the cancelled order.",
        "The refund was approved but the amount is wrong.",
        "I was promised a refund for the broken product.",
        "My return was received but the credit never came.",
        "I want my money back because the service was never provided.",
    ),
}
FILLER = (
    "Thanks for your help.",
    "This is the second time I write.",
    "Please get back to me soon.",
    "I have been a customer for years.",
    "Kind regards.",
    "I hope this can be fixed quickly.",
    "Nobody answered my last message.",
    "",
)


@dataclass(frozen=True)
class Scale:
    name: str
    customers: int  # customers in the fine-tuning data (one identifier each)
    tickets: int  # tickets per customer (an identifier appears this many times)
    eval_records: int
    public_records: int  # pretraining text (other customers)
    hidden: int
    layers: int
    heads: int
    vocab: int
    pretrain_steps: int
    pretrain_batch: int
    pretrain_lr: float
    control_epochs: float
    control_batch: int
    control_lr: float
    dp_epochs: float
    dp_batch: int
    dp_lr: float
    max_length: int = 64
    # DP steps in chunks of this many records (BatchMemoryManager): per-sample gradients of a
    # full fine-tune take records x parameters floats
    dp_physical_batch: int | None = None


SCALES = {
    "smoke": Scale("smoke", 8, 2, 24, 200, 32, 1, 2, 400, 20, 16, 3e-3, 2, 8, 3e-3, 1, 8, 1e-3),
    "cpu": Scale(
        "cpu", 300, 4, 400, 4000, 128, 2, 4, 2000, 600, 32, 2e-3, 25, 16, 2e-3, 8, 128, 1e-3
    ),
    # >= 100M parameters (hidden 768, 12 layers: 119.4M with an 8,000-token embedding)
    "cuda": Scale(
        "cuda", 2000, 4, 2000, 60000, 768, 12, 12, 8000, 6000, 64, 3e-4, 30, 32, 1e-4, 8, 1024,
        5e-4, dp_physical_batch=32,
    ),
}  # fmt: skip


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- data --------------------------------------------------------------------------------------


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def customers(n: int, seed: int) -> list[tuple[str, str]]:
    from faker import Faker

    fake = Faker()
    fake.seed_instance(seed)
    rng = random.Random(seed)
    seen: set[str] = set()
    out = []
    while len(out) < n:
        name, number = fake.name(), ssn(rng)
        if name in seen or number in seen:
            continue
        seen |= {name, number}
        out.append((name, number))
    return out


def ticket(name: str, number: str, rng: random.Random) -> dict:
    cat = rng.choice(sorted(CATEGORIES))
    body = f"{rng.choice(CATEGORIES[cat])} {rng.choice(FILLER)}".strip()
    head = f"Ticket from {name} (SSN {number}): {body}"
    return {"head": head, "label": cat}


def make_data(scale: Scale, seed: int) -> dict[str, Any]:
    """Fine-tuning tickets, held-out tickets (other customers) and pretraining text (others)."""
    from finetrail.governance.pii import patterns

    people = customers(scale.customers + scale.eval_records + scale.public_records, seed)
    train_people = people[: scale.customers]
    eval_people = people[scale.customers : scale.customers + scale.eval_records]
    public_people = people[scale.customers + scale.eval_records :]
    rng = random.Random(seed + 1)
    train = [
        ticket(n, s, rng) for n, s in train_people for _ in range(scale.tickets)
    ]  # each identifier repeated `tickets` times
    rng.shuffle(train)
    heldout = [ticket(n, s, rng) for n, s in eval_people]
    public = [ticket(n, s, rng)["head"] for n, s in public_people]
    for i, t in enumerate(train):  # the probe must see every planted identifier as one
        if not any(m.entity == "US_SSN" for m in patterns.find(t["head"])):
            raise RuntimeError(f"the PII patterns find no SSN in training ticket {i}")
    return {"train": train, "heldout": heldout, "public": public, "identifiers": len(train_people)}


def text(t: dict) -> str:
    return f"{t['head']} Category: {t['label']}"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---- the base model ----------------------------------------------------------------------------


def pretrain_base(folder: Path, public: list[str], scale: Scale, device: str, seed: int) -> None:
    """A Llama of the scale's size, pretrained from scratch on ``public`` (next-token loss)."""
    import torch

    from finetrail.training.model import quiet_loading
    from finetrail.training.tiny import bpe_tokenizer, fast_tokenizer, tiny_causal_lm

    corpus = public + [f"Category: {c}" for c in CATEGORIES]  # the label words are tokens
    tok = fast_tokenizer(
        bpe_tokenizer(corpus, vocab_size=scale.vocab, template="<s> $A </s>"),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    ids = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    net = tiny_causal_lm(
        vocab_size=len(tok),
        hidden=scale.hidden,
        layers=scale.layers,
        heads=scale.heads,
        max_positions=max(128, scale.max_length),
        token_ids=ids,
        seed=seed,
    ).to(device)
    enc = tok(public, padding="max_length", truncation=True, max_length=scale.max_length,
              return_tensors="pt")  # fmt: skip
    x, m = enc["input_ids"], enc["attention_mask"]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=scale.pretrain_lr)
    net.train()
    t0, done = time.perf_counter(), 0
    while done < scale.pretrain_steps:
        for idx in torch.randperm(len(x), generator=gen).split(scale.pretrain_batch):
            xb, mb = x[idx].to(device), m[idx].to(device)
            labels = xb.masked_fill(mb == 0, -100)
            loss = net(input_ids=xb, attention_mask=mb, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done % 100 == 0 or done == scale.pretrain_steps:
                log(
                    f"  pretrain step {done}/{scale.pretrain_steps}: loss {float(loss.detach()):.3f}"
                )
            if done >= scale.pretrain_steps:
                break
    net.eval().to("cpu")
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(folder))
    with quiet_loading():
        net.save_pretrained(str(folder), safe_serialization=True)
    (folder / "pretraining.json").write_text(
        json.dumps({"steps": done, "seconds": time.perf_counter() - t0, "records": len(public)}),
        encoding="utf-8",
    )


# ---- one run through finetrail ----------------------------------------------------------------


def run_cli(args: list[Any]) -> tuple[int, str]:
    from finetrail.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue() + err.getvalue()


def train_run(
    ws_root: Path, *, base: Path, data: dict[str, Any], dp: bool, args: Any, scale: Scale
) -> dict[str, Any]:
    import shutil

    import yaml

    from finetrail.governance.workspace import Workspace
    from finetrail.training import train

    if ws_root.exists():
        shutil.rmtree(ws_root)
    ws = Workspace.init(ws_root, model="seed-claim", version="dp" if dp else "control",
                        owner="benchmark", intended_purpose="seed-claim benchmark")  # fmt: skip
    method = {"name": args.method} | (
        {"rank": 16, "alpha": 16, "target_modules": "all-linear"} if args.method == "lora" else {}
    )
    cfg: dict[str, Any] = {
        "base_model": {"path": str(base)},
        "method": method,
        "data": {
            "train": str(data["train"]),
            "max_length": scale.max_length,
            "unregistered": "flag",
        },
        "device": args.device,
        "seed": args.seed,
        "tracking": {"mlflow": False},
    }
    if dp:
        cfg["privacy"] = {"target_epsilon": args.epsilon, "delta": 1e-5, "max_grad_norm": 1.0}
        cfg["optim"] = {"batch_size": scale.dp_batch, "epochs": scale.dp_epochs,
                        "learning_rate": scale.dp_lr}  # fmt: skip
        if scale.dp_physical_batch:
            cfg["optim"]["physical_batch_size"] = scale.dp_physical_batch
    else:
        cfg["privacy"] = "none"
        cfg["optim"] = {"batch_size": scale.control_batch, "epochs": scale.control_epochs,
                        "learning_rate": scale.control_lr}  # fmt: skip
    config = ws_root.parent / f"{ws_root.name}.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    t0 = time.perf_counter()
    rec = train(config=config, workspace=ws, actor="benchmark", progress=False)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # every training context is prompted (the probe samples max_prompts of them otherwise)
    probe_cfg = ws_root.parent / f"{ws_root.name}-probe.json"
    probe_cfg.write_text(json.dumps({"extraction": {"max_prompts": scale.customers}}), "utf-8")
    code, out = run_cli(["probe", ws_root, "--only", "extraction", "--train-data", data["train"],
                         "--config", probe_cfg, "--no-progress", "--actor", "benchmark"])  # fmt: skip
    if code != 0:
        raise RuntimeError(f"finetrail probe exited {code}:\n{out[-3000:]}")
    probe_s = time.perf_counter() - t0
    ext = json.loads((ws_root / "evidence/probes/extraction.json").read_text("utf-8"))
    f1, base_f1 = task_f1(ws_root, data["heldout_rows"], args.device)
    return {
        "steps": rec.dp.steps,
        "epochs": scale.dp_epochs if dp else scale.control_epochs,
        "batch": rec.dp.expected_batch_size,
        "epsilon": rec.dp.epsilon,
        "noise_multiplier": rec.dp.noise_multiplier,
        "trainable_parameters": rec.trainable_parameters,
        "base_parameters": rec.base_model.parameters,
        "train_seconds": train_s,
        "probe_seconds": probe_s,
        "final_train_loss": rec.train_loss[-1] if rec.train_loss else None,
        "identifiers_in_training": ext["pii_values_in_training"],
        "memorized_identifiers": ext["memorized_identifiers"],
        "memorized_rate": ext["memorized_rate"],
        "targeted_hits": ext["targeted_hits"],
        "base_model_matches": ext["base_model_matches"],
        "extraction_prompts": ext["prompts"],
        "task_f1": f1,
        "base_task_f1": base_f1,
    }


def macro_f1(truth: list[str], pred: list[str]) -> float:
    scores = []
    for c in sorted(CATEGORIES):
        tp = sum(t == c and p == c for t, p in zip(truth, pred, strict=True))
        fp = sum(t != c and p == c for t, p in zip(truth, pred, strict=True))
        fn = sum(t == c and p != c for t, p in zip(truth, pred, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def task_f1(ws_root: Path, rows: list[dict], device: str) -> tuple[float, float]:
    """Macro F1 of the fine-tuned model and of its base on the held-out tickets."""
    from finetrail.governance.probes.scoring import continuation_logprobs
    from finetrail.training.loading import load_trained

    loaded = load_trained(ws_root, device=device)
    tok = loaded.tokenizer
    labels = sorted(CATEGORIES)
    conts = {c: tok(f" {c}", add_special_tokens=False)["input_ids"] for c in labels}
    prefixes = [
        [tok.bos_token_id] + tok(f"{r['head']} Category:", add_special_tokens=False)["input_ids"]
        for r in rows
    ]
    truth = [r["label"] for r in rows]
    out = []
    for model in (loaded.model, loaded.base_model):
        pairs = [(p, conts[c]) for p in prefixes for c in labels]
        lp = continuation_logprobs(model, pairs, pad_id=tok.pad_token_id or 0)
        pred = [labels[max(range(len(labels)), key=lambda j, i=i: lp[i * len(labels) + j])]
                for i in range(len(rows))]  # fmt: skip
        out.append(macro_f1(truth, pred))
    return out[0], out[1]


# ---- the table ---------------------------------------------------------------------------------


def summarise(control: dict[str, Any], dp: dict[str, Any]) -> dict[str, Any]:
    c_mem, d_mem = control["memorized_identifiers"], dp["memorized_identifiers"]
    return {
        "removed_fraction": (1 - d_mem / c_mem) if c_mem else None,
        "kept_fraction": (dp["task_f1"] / control["task_f1"]) if control["task_f1"] else None,
    }


def _pct(v: float | None) -> str:
    return "undefined" if v is None else f"{100 * v:.0f}%"


def render(result: dict[str, Any]) -> str:
    c, d, s, meta = result["control"], result["dp"], result["summary"], result["meta"]
    sc = meta["scale"]
    lines = [
        f"Machine: {meta['machine']}",
        "",
        f"Command: `{meta['command']}` ({meta['seconds']:.0f} s in all; pretraining the base "
        f"model {meta['pretrain_seconds']:.0f} s). Scale `{sc['name']}`: a Llama of "
        f"{meta['base_parameters']:,} parameters (hidden {sc['hidden']}, {sc['layers']} layers, "
        f"vocabulary {meta['vocab']}), pretrained {sc['pretrain_steps']} steps on "
        f"{sc['public_records']:,} generated tickets of other customers; fine-tuned "
        f"({meta['method']}) on {sc['customers'] * sc['tickets']:,} tickets of "
        f"{sc['customers']} customers (each SSN in {sc['tickets']} tickets); F1 on "
        f"{sc['eval_records']} held-out tickets of other customers (base model: macro F1 "
        f"{c['base_task_f1']:.3f}); device {meta['device']}.",
        "",
        "| run | epochs x expected batch (steps) | epsilon (PRV, delta 1e-5) | noise multiplier "
        "| train s | memorised "
        "identifiers / in training (extraction probe) | prompts whose own SSN came out | task "
        "macro F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in (("non-private control", c), (f"DP-SGD, target epsilon {meta['epsilon']:g}", d)):
        eps = "-" if r["epsilon"] is None else f"{r['epsilon']:.2f}"
        noise = "-" if r["noise_multiplier"] is None else f"{r['noise_multiplier']:.2f}"
        lines.append(
            f"| {name} | {r['epochs']:g} x {r['batch']:.0f} ({r['steps']}) | {eps} | {noise} | "
            f"{r['train_seconds']:.0f} | {r['memorized_identifiers']} / "
            f"{r['identifiers_in_training']} ({100 * r['memorized_rate']:.1f}%) | "
            f"{r['targeted_hits']} | {r['task_f1']:.3f} |"
        )
    lines += [
        "",
        f"Memorised identifiers removed by DP: {_pct(s['removed_fraction'])} "
        f"(1 - {d['memorized_identifiers']} / {c['memorized_identifiers']}; the source: 97%). "
        f"Task F1 kept: {_pct(s['kept_fraction'])} ({d['task_f1']:.3f} / {c['task_f1']:.3f}; "
        f"the source: 91%).",
    ]
    return "\n".join(lines)


def write_doc(doc: Path, block: str, name: str = "seed-claim") -> None:
    """Fill the block between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` (added at the
    end when the file has none)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text_ = doc.read_text("utf-8") if doc.exists() else f"{start}\n{end}\n"
    if start not in text_ or end not in text_:
        text_ += f"\n{start}\n{end}\n"
    head, rest = text_.split(start, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{start}\n{block}\n{end}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="the smallest run (seconds; a test)")
    ap.add_argument("--quick", action="store_true", help="the same as --smoke (make bench)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--base-model", default=None, help="a base model folder (else pretrained)")
    ap.add_argument("--method", default="full", choices=["full", "lora"])
    ap.add_argument("--epsilon", type=float, default=0.5)
    ap.add_argument("--customers", type=int, default=None, help="override the scale's customers")
    ap.add_argument("--dp-batch", type=int, default=None, help="override the DP expected batch")
    ap.add_argument("--dp-lr", type=float, default=None, help="override the DP learning rate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    ap.add_argument("--out", default=None, help="work folder (default build/seed-claim-<scale>)")
    ap.add_argument("--json", default=None, help="result file (default <out>/seed_claim.json)")
    ap.add_argument("--write-doc", default=None, help="fill the seed-claim block of this file")
    ap.add_argument(
        "--doc-block", default="seed-claim", help="the block's marker name (default seed-claim)"
    )
    args = ap.parse_args(argv)

    import torch

    scale = SCALES["smoke" if args.smoke or args.quick else args.device.split(":")[0]]
    if args.customers:
        scale = replace(scale, customers=args.customers)
    if args.dp_lr:
        scale = replace(scale, dp_lr=args.dp_lr)
    if args.dp_batch:
        scale = replace(scale, dp_batch=args.dp_batch)
        if args.dp_batch > 128 and not scale.dp_physical_batch:  # per-sample gradients' memory
            scale = replace(scale, dp_physical_batch=128)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device on this machine")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("FINETRAIL_DEV_UNSIGNED", "1")  # benchmark workspaces, unsigned
    out = Path(args.out or ROOT / "build" / f"seed-claim-{scale.name}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    data = make_data(scale, args.seed)
    paths = {
        "train": write_jsonl(out / "data/train.jsonl", [{"text": text(t)} for t in data["train"]]),
        "heldout_rows": data["heldout"],
    }
    base = Path(args.base_model).resolve() if args.base_model else out / "base-model"
    pre_s = 0.0
    if not args.base_model:
        t0 = time.perf_counter()
        log(f"== pretraining the base model ({scale.name})")
        pretrain_base(base, data["public"], scale, args.device, args.seed)
        pre_s = time.perf_counter() - t0
    runs = {}
    for name, dp in (("control", False), ("dp", True)):
        log(f"== {name}: training and probing")
        runs[name] = train_run(out / "runs" / name, base=base, data=paths, dp=dp, args=args,
                               scale=scale)  # fmt: skip
        log(f"   {json.dumps(runs[name])}")
    from dp_overhead import machine
    from transformers import AutoConfig

    n_base = runs["control"]["base_parameters"]
    cmd = "python benchmarks/seed_claim.py" + (" --smoke" if scale.name == "smoke" else "")
    cmd += f" --device {args.device}" if args.device != "cpu" else ""
    cmd += f" --threads {args.threads}" if args.device == "cpu" else ""
    cmd += f" --method {args.method}" if args.method != "full" else ""
    cmd += f" --customers {args.customers}" if args.customers else ""
    cmd += f" --dp-batch {args.dp_batch}" if args.dp_batch else ""
    cmd += f" --dp-lr {args.dp_lr:g}" if args.dp_lr else ""
    result = {
        "claim": "DP at epsilon 0.5 removed 97% of memorised identifiers while keeping 91% of "
        "task F1",
        "control": runs["control"],
        "dp": runs["dp"],
        "summary": summarise(runs["control"], runs["dp"]),
        "meta": {
            "scale": asdict(scale),
            "method": args.method,
            "epsilon": args.epsilon,
            "device": args.device,
            "seed": args.seed,
            "base_model": str(base),
            "base_parameters": n_base,
            "vocab": AutoConfig.from_pretrained(str(base)).vocab_size,
            "pretrain_seconds": pre_s,
            "seconds": time.perf_counter() - t_all,
            "command": cmd,
            "machine": machine(args.threads),
        },
    }
    Path(args.json or out / "seed_claim.json").write_text(
        json.dumps(result, indent=1, sort_keys=True), encoding="utf-8"
    )
    block = render(result)
    if args.write_doc:
        write_doc(Path(args.write_doc), block, args.doc_block)
    print(block)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
