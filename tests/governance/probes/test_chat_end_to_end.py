"""Chat data end to end: chat canaries planted into ``messages`` conversations, the augmented set
registered, a tiny model trained under DP with the loss on the assistant turns only, the four
probes run on the chat workspace, and the workspace verified. The canaries are scored in the
framing training gave them (the chat rendering of their conversation up to the assistant's reply),
and every record says which rendering was used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from finetrail.cli import main
from finetrail.governance.evidence.probes import (
    DPAuditEvidence,
    ExposureEvidence,
    ExtractionEvidence,
    MembershipEvidence,
)
from finetrail.governance.evidence.registry import probe_location
from finetrail.governance.probes.canaries import load_canaries
from finetrail.governance.workspace import Workspace
from finetrail.training import train
from tests.support.tiny_training import base_config, make_texts, tiny_model, write_config

pytestmark = pytest.mark.slow

FAST = {
    "exposure": {"samples": 50, "max_exact_candidates": 1000},
    "extraction": {
        "max_prompts": 8,
        "samples_per_prompt": 1,
        "generic_samples": 1,
        "max_new_tokens": 8,
        "max_beams": 4,
    },
    "membership": {"bootstrap": 10},
}
META = ["--source", "test", "--license", "CC0-1.0", "--collection", "generated"]
META += ["--legal-basis", "none needed", "--purpose", "testing"]
PLAIN_RENDERING = "chat messages rendered with finetrail's plain template"


def chats(n: int, seed: int) -> list[dict[str, Any]]:
    users = make_texts(n, seed=seed, min_words=2, max_words=5)
    replies = make_texts(n, seed=seed + 100, min_words=2, max_words=6)
    return [
        {"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": r}]}
        for u, r in zip(users, replies, strict=True)
    ]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("chat-e2e")
    base = tmp / "base"
    shutil.copytree(tiny_model("llama", tmp_path_factory), base)
    ws = Workspace.init(tmp / "ws", model="m", version="1", owner="alice")
    source = write(tmp / "source.jsonl", chats(40, seed=1))
    planted, held = tmp / "planted.jsonl", tmp / "heldout.jsonl"
    plant = ["canaries", "plant", str(ws.root), "--data", str(source), "--out", str(planted)]
    plant += ["--heldout-out", str(held), "--m", "6", "--repetitions", "1,4", "--seed", "4"]
    assert main([*plant, "--data-format", "chat", "--actor", "a"]) == 0
    register = ["data", "register", str(ws.root), str(planted), "--name", "chat+canaries"]
    assert main([*register, *META, "--actor", "a"]) == 0
    cfg = base_config(base, tmp, optim={"steps": 3, "batch_size": 8})
    cfg["data"] = {
        **cfg["data"],
        "train": str(planted),
        "validation": str(write(tmp / "val.jsonl", chats(8, seed=7))),
        "format": "messages",
        "max_length": 128,
    }
    train(config=write_config(tmp / "train.yaml", cfg), workspace=ws)
    config = tmp / "probe.json"
    config.write_text(json.dumps(FAST), encoding="utf-8")
    probe = ["probe", str(ws.root), "--heldout-data", str(held), "--config", str(config)]
    rc = main([*probe, "--no-progress", "--actor", "a"])
    return SimpleNamespace(root=ws.root, tmp=tmp, planted=planted, held=held, rc=rc, base=base)


def test_chat_canaries_are_planted_as_conversations_and_recorded(
    pipeline: SimpleNamespace,
) -> None:
    cs = load_canaries(Workspace.open(pipeline.root))
    assert cs is not None and cs.lineage is not None
    assert (cs.data_format, cs.lineage.data_format, cs.lineage.text_field) == (
        "messages",
        "messages",
        "messages",
    )
    assert cs.chat_user_turn in {
        t for c in chats(40, seed=1) for t in [c["messages"][0]["content"]]
    }
    rows = [json.loads(line) for line in pipeline.planted.read_text("utf-8").splitlines()]
    texts = {c.text: c for c in cs.canaries}
    copies = [r["messages"] for r in rows if r["messages"][-1]["content"] in texts]
    assert len(copies) == sum(c.copies for c in cs.canaries) == cs.lineage.examples_added > 0
    assert all(m[0] == {"role": "user", "content": cs.chat_user_turn} for m in copies)


def test_training_took_the_loss_on_the_assistant_turns_under_dp(pipeline: SimpleNamespace) -> None:
    training = json.loads((pipeline.root / "evidence" / "training.json").read_text("utf-8"))
    assert training["dp"]["enabled"] is True and training["dp"]["epsilon"] > 0
    stated = json.dumps(training)
    assert PLAIN_RENDERING in stated and "loss on the assistant turns' tokens only" in stated


def test_every_probe_ran_and_states_the_chat_rendering(pipeline: SimpleNamespace) -> None:
    assert pipeline.rc == 0
    classes = {
        "exposure": ExposureEvidence,
        "dp_audit": DPAuditEvidence,
        "membership": MembershipEvidence,
        "extraction": ExtractionEvidence,
    }
    for name, cls in classes.items():
        record = cls.read(pipeline.root / probe_location(name))
        rendering = record.subject.rendering
        assert rendering is not None and rendering.startswith(PLAIN_RENDERING), name
        assert "canaries scored in their conversation's framing" in rendering
    membership = MembershipEvidence.read(pipeline.root / probe_location("membership"))
    assert membership.nonmembers == membership.members == 8  # balanced to the non-members
    assert membership.split.startswith("random split of one pool")
    assert main(["verify", str(pipeline.root)]) == 0


def test_exposure_scores_the_secret_in_the_assistant_turn(pipeline: SimpleNamespace) -> None:
    from finetrail.errors import InputError
    from finetrail.governance.probes.context import ProbeContext
    from finetrail.governance.probes.formats import format_by_name
    from finetrail.governance.probes.models import ProbeModels, TokenizerAdapter
    from finetrail.governance.probes.runner import _check_canaries_fit, chat_framing, chat_texts
    from finetrail.governance.probes.secret_space import PLAIN, plan_for, secret_logprobs
    from finetrail.training.loading import load_trained

    cs = load_canaries(Workspace.open(pipeline.root))
    assert cs is not None
    record = ExposureEvidence.read(pipeline.root / probe_location("exposure"))
    loaded = load_trained(pipeline.root)
    loaded.model.eval()
    tok = TokenizerAdapter(loaded.tokenizer)
    framing = chat_framing(loaded.tokenizer, cs.chat_user_turn)
    assert framing.before == f"user: {cs.chat_user_turn}\nassistant: " and framing.after == "\n"
    framed = secret_logprobs(loaded.model, tok, list(cs.canaries), framing=framing)
    bare = secret_logprobs(loaded.model, tok, list(cs.canaries), framing=PLAIN)
    for row in record.canaries:
        assert row.log_likelihood == pytest.approx(framed[row.id], abs=1e-5)
    # a model this small barely tells the two contexts apart, but they are not the same context
    assert max(abs(framed[k] - bare[k]) for k in framed) > 1e-6

    # the scored context and secret are exactly the tokens training had for a canary's copy
    from finetrail.training.formats import Record, encode_records

    (canary,) = [c for c in cs.canaries if c.included][:1]
    plan = plan_for(tok, format_by_name(canary.format), [canary.secret], framing=framing)
    context, secret = plan.pair(tok, canary.secret)
    turns = (("user", cs.chat_user_turn or ""), ("assistant", canary.text))
    ids, _, loss, _ = encode_records(
        loaded.tokenizer, [Record("messages", messages=turns)], 128, loss_on="completion"
    )
    trained = [int(i) for i in ids[0]]
    assert trained[: len(context) + len(secret)] == context + secret
    assert all(int(loss[0, i]) == 1 for i in range(len(context), len(context) + len(secret)))

    # the members are the rendered conversations without the canaries' copies
    texts = chat_texts(loaded.tokenizer, pipeline.planted)[0]
    ctx = ProbeContext(models=None, subject=record.subject, canaries=cs, framing=framing)  # type: ignore[arg-type]
    ctx.train_texts = texts
    assert len(texts) == 32 + cs.lineage.examples_added  # type: ignore[union-attr]
    members = ctx.member_texts()
    assert len(members) == 32 and all(t.startswith("user: ") for t in members)
    assert not any(c.text in t for c in cs.canaries for t in members)

    # a secret training truncated away is refused, not scored
    ctx.models = ProbeModels(model=loaded.model, tokenizer=loaded.tokenizer)
    _check_canaries_fit(ctx, len(context) + len(secret))  # fits exactly
    with pytest.raises(InputError) as caught:
        _check_canaries_fit(ctx, len(context) + len(secret) - 1)
    assert caught.value.diagnostics().splitlines()[0] == (
        f"error: {pipeline.planted}: field 'data.max_length': a pin6 canary's secret ends at "
        f"token {len(context) + len(secret)}, beyond the training's data.max_length "
        f"{len(context) + len(secret) - 1}: it was truncated away and never trained on"
    )


def test_probing_a_chat_workspace_as_text_is_refused(
    pipeline: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    args = ["probe", str(pipeline.root), "--only", "exposure", "--data-format", "text"]
    assert main([*args, "--no-progress", "--actor", "a"]) == 2
    err = capsys.readouterr().err
    assert "the canary set was planted in messages data, not text" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("line", "want"),
    [
        (
            {"messages": [{"role": "user", "content": "hi"}]},
            "line 2: no assistant message with content (nothing to learn)",
        ),
        (
            {"messages": [{"role": "user"}]},
            "line 2: messages[0] must be an object with 'role' (system, user, assistant, tool) "
            "and a string 'content'",
        ),
        ({"text": "plain"}, "line 2: field 'messages' is missing or not a non-empty list"),
    ],
)
def test_a_bad_chat_record_exits_2_naming_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: dict[str, Any], want: str
) -> None:
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="alice")
    data = write(tmp_path / "bad.jsonl", [*chats(1, seed=1), line])
    args = ["canaries", "plant", str(ws.root), "--data", str(data), "--out", str(tmp_path / "o")]
    assert main([*args, "--data-format", "chat", "--seed", "1", "--actor", "a"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"error: {data}: field 'messages': invalid chat dataset: {want}"
    assert not (tmp_path / "o").exists()


def test_the_demo_writes_its_fine_tuning_data_as_conversations(tmp_path: Path) -> None:
    from finetrail.demo.pipeline import QUICK, Variant, _prepare_training_file, _train_config
    from finetrail.training.data import read_jsonl_records

    notes = write(tmp_path / "notes.jsonl", [{"text": f"Support ticket {i}."} for i in range(20)])
    task = [{"prompt": f"Applicant {i}: approve?", "label": "yes"} for i in range(4)]
    train_task, eval_task = write(tmp_path / "t.jsonl", task), write(tmp_path / "e.jsonl", task)
    out = tmp_path / "out"
    out.mkdir()
    files = _prepare_training_file(
        notes=notes, task_train=train_task, task_eval=eval_task, out=out, data_format="chat"
    )
    for path in files:
        _, records = read_jsonl_records(path, "messages", "text")  # what training accepts
        assert records and all(r.format == "messages" for r in records)
    _, finetune = read_jsonl_records(files[0], "messages", "text")
    assert finetune[0].messages == (
        ("user", "Support ticket 0."),
        ("assistant", "Noted on the account: Support ticket 0."),
    )
    assert finetune[-1].messages == (("user", "Applicant 3: approve?"), ("assistant", "yes"))
    variant = Variant(name="dp", workspace=tmp_path, private=True)
    cfg = _train_config(
        variant,
        base=tmp_path,
        train=files[0],
        val=files[1],
        generic=tmp_path / "g.jsonl",
        sizes=QUICK,
        seed=0,
        data_format="chat",
    )
    assert (cfg["data"]["format"], cfg["data"]["loss_on"]) == ("messages", "completion")
    assert "generic" not in cfg["data"] and cfg["privacy"]["target_epsilon"] == 1.0
