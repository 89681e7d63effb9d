"""Bias audit with a language model: verbaliser scoring, counterfactual probes, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from finetrail.cli import main
from finetrail.governance.bias import BiasAuditSettings, lm_scorer, load_probes
from finetrail.governance.bias._counterfactual import run_counterfactual
from finetrail.governance.bias._metrics import Settings
from finetrail.governance.evidence.bias import BiasAuditEvidence

SETTINGS = Settings(resamples=200, confidence=0.95, seed=0, min_group_size=30)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetrail.training.base_model import build_base_model

    path = build_base_model(
        out_dir=tmp_path_factory.mktemp("bias") / "base",
        steps=3,
        public_records=200,
        include_stdlib=False,
    )
    return path, AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from finetrail.training.synthetic import task_examples

    out = tmp_path_factory.mktemp("synth")
    rows = task_examples(seed=1, records=120, disparity=0.3, split="eval")
    with open(out / "task_eval.jsonl", "w") as fh:
        for r in rows:
            fh.write(
                json.dumps(
                    {
                        "prompt": r.prompt,
                        "label": r.label,
                        "gender": r.gender,
                        "age_band": r.age_band,
                        "region": r.region,
                    }
                )
                + "\n"
            )
    return out


def _manual_loglik(model, tok, prompt, verbaliser):
    import torch

    p = tok(prompt)["input_ids"]
    v = tok(verbaliser, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([p + v])).logits[0], -1)
    return sum(float(logp[len(p) - 1 + k, t]) for k, t in enumerate(v))


def test_scores_equal_a_plain_forward_pass_alone_or_padded_in_a_batch(tiny):
    _, model, tok = tiny
    prompts = [
        "Question: approve the loan? Answer:",
        "Loan application from Mary Johnson, age 41, rural area. Her income is 64k a year.\n"
        "Question: approve the loan? Answer:",
        "Hi",
    ]
    for verbalisers in (
        [" yes", " no"],
        [" yes, approve it", " no, decline it"],
    ):  # 1 token / several
        scorer = lm_scorer(model, tok, verbalisers, batch_size=8)
        batched = scorer(prompts)
        alone = np.vstack([scorer([p]) for p in prompts])
        np.testing.assert_allclose(batched, alone, atol=1e-4)
        manual = np.array(
            [[_manual_loglik(model, tok, p, v) for v in verbalisers] for p in prompts]
        )
        np.testing.assert_allclose(batched, manual, atol=1e-4)
    assert len(tok(" no, decline it", add_special_tokens=False)["input_ids"]) > 2


def _income_only_scorer(prompts):
    """A model that reads only income and loan size: it ignores names, pronouns, age, region."""
    out = []
    for p in prompts:
        income = int(re.search(r"income is (\d+)k", p).group(1))
        loan = int(re.search(r"loan request is (\d+)k", p).group(1))
        margin = (income * 0.3 - loan) / 10
        out.append([margin, -margin])
    return np.array(out, dtype=np.float64)


def _gender_sensitive_scorer(prompts):
    base = _income_only_scorer(prompts)
    push = np.array([[3.0, -3.0] if " His " in p else [0.0, 0.0] for p in prompts])
    return base + push


def test_counterfactual_pairs_show_no_flips_when_the_model_ignores_the_terms():
    probes, sha = load_probes()
    result = run_counterfactual(
        probes=probes, sha256=sha, scorer=_income_only_scorer, settings=SETTINGS
    )
    assert set(result.attributes) == {"gender", "age_band", "region"}
    for attr in result.attributes.values():
        assert attr.pairs > 0
        assert attr.flip_share.value == 0.0 and attr.max_abs_change == 0.0
        assert attr.demographic_parity_difference.value == 0.0
    # the same probes catch a model that does look at the pronoun (so the test can fail)
    biased = run_counterfactual(
        probes=probes, sha256=sha, scorer=_gender_sensitive_scorer, settings=SETTINGS
    )
    g = biased.attributes["gender"]
    assert g.flip_share.value > 0.2 and g.mean_change.value > 0.1
    assert g.selection_rate["male"].value > g.selection_rate["female"].value
    assert biased.attributes["age_band"].flip_share.value == 0.0


def test_user_probe_file_extends_and_is_validated(tmp_path):
    good = tmp_path / "probes.yaml"
    good.write_text(
        "schema_version: 1\ndefaults: {who: they}\ntemplates: ['Is {who} eligible? Answer:']\n"
        "attributes:\n  pronoun:\n    - {f: {who: she}, m: {who: he}}\n"
    )
    probes, _ = load_probes(good)
    assert probes.attributes["pronoun"][0]["f"] == {"who": "she"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "schema_version: 1\ndefaults: {}\ntemplates: ['Is {who} ok?']\n"
        "attributes: {x: [{a: {who: a}, b: {who: b}}]}\n"
    )
    with pytest.raises(Exception, match="placeholders without a default"):
        load_probes(bad)


def test_audit_bias_command_writes_evidence_that_verifies(tiny, synth, tmp_path, capsys):
    path, _, _ = tiny
    ws = tmp_path / "ws"
    assert main(["init", str(ws), "--model", "m", "--version", "1", "--owner", "o"]) == 0
    rc = main(
        [
            "audit",
            "bias",
            str(ws),
            "--eval",
            str(synth / "task_eval.jsonl"),
            "--sensitive",
            "gender,age_band",
            "--model",
            str(path),
            "--base-model",
            str(path),
            "--resamples",
            "100",
            "--min-group-size",
            "15",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "demographic_parity_difference" in out and "counterfactual gender" in out
    rec = BiasAuditEvidence.read(ws / "evidence" / "bias.json")
    assert rec.method.scoring == "verbaliser_log_likelihood" and rec.task.n == 120
    assert rec.subject.adapter_sha256 == rec.subject.base_weights_sha256  # same folder
    assert rec.task.auc is not None
    # base and fine-tuned are the same model here: the paired effect is exactly zero
    for eff in rec.finetune_effect.values():
        assert eff.delta in (0.0, None) and eff.ci_low in (0.0, None) and eff.ci_high in (0.0, None)
    assert {b.metric for b in rec.plot_data} == {"selection_rate", "accuracy", "tpr", "fpr"}
    assert any(g.feature == "gender&age_band" for g in rec.groups)
    ledger = (ws / "ledger.jsonl").read_text().splitlines()
    assert json.loads(ledger[-1])["kind"] == "bias.audited"
    assert main(["verify", str(ws)]) == 0


def _bad_eval(tmp_path, rows):
    p = tmp_path / "eval.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


OK_ROW = {"prompt": "Approve? Answer:", "label": "yes", "gender": "female", "age_band": "50+"}


@pytest.mark.parametrize(
    ("rows", "args", "needle"),
    [
        (
            [
                OK_ROW,
                {**OK_ROW, "gender": "male"},
                {k: v for k, v in OK_ROW.items() if k != "age_band"},
            ],
            [],
            "sensitive column 'age_band' is missing",
        ),
        ([OK_ROW, {**OK_ROW, "gender": "male", "label": "maybe"}], [], "label 'maybe'"),
        (
            [OK_ROW, {**OK_ROW, "gender": ""}, {**OK_ROW, "gender": "male"}],
            [],
            "empty group in sensitive column 'gender'",
        ),
        ([OK_ROW, {**OK_ROW, "gender": "male"}], ["--labels", "yes,no,maybe"], "non-binary task"),
        (
            [
                OK_ROW,
                {**OK_ROW, "gender": "male", "label": "maybe"},
                {**OK_ROW, "label": "perhaps"},
            ],
            [],
            "non-binary task",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_column_or_label(tmp_path, capsys, tiny, rows, args, needle):
    path, _, _ = tiny
    ws = tmp_path / "ws"
    main(["init", str(ws), "--model", "m", "--version", "1", "--owner", "o"])
    capsys.readouterr()
    ev = _bad_eval(tmp_path, rows)
    rc = main(
        [
            "audit",
            "bias",
            str(ws),
            "--eval",
            str(ev),
            "--sensitive",
            "gender,age_band",
            "--model",
            str(path),
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and "Traceback" not in err
    assert not (ws / "evidence" / "bias.json").exists()


def test_predictions_path_via_cli(tmp_path, capsys):
    ws = tmp_path / "ws"
    main(["init", str(ws), "--model", "m", "--version", "1", "--owner", "o"])
    rng = np.random.default_rng(0)
    rows = [
        {
            "y_true": int(rng.random() < 0.5),
            "y_pred": int(rng.random() < 0.5),
            "score": float(rng.random()),
            "gender": str(rng.choice(["f", "m"])),
        }
        for _ in range(200)
    ]
    p = _bad_eval(tmp_path, rows)
    rc = main(
        [
            "audit",
            "bias",
            str(ws),
            "--predictions",
            str(p),
            "--sensitive",
            "gender",
            "--resamples",
            "50",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    rec = BiasAuditEvidence.read(ws / "evidence" / "bias.json")
    assert rec.method.scoring == "predictions_file" and rec.counterfactual is None
    assert rec.finetune_effect is None and rec.subject.predictions_sha256


def test_importing_the_audit_stays_light():
    code = (
        "import sys, finetrail.governance.bias, finetrail.governance.bias.cli, finetrail.cli; "
        "print(sorted(m for m in ('torch', 'transformers', 'mlflow', 'presidio_analyzer', "
        "'fairlearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_settings_reject_bad_values():
    with pytest.raises(Exception, match="resamples"):
        BiasAuditSettings(resamples=1)


def test_workspace_mode_uses_the_training_loader(tiny, synth, tmp_path, monkeypatch):
    """Without --model, the audit loads the fine-tuned model and its base through
    finetrail.training.loading.load_trained (replaced here by one that returns real models)."""
    import types

    from finetrail.governance.bias import audit_workspace_bias
    from finetrail.governance.workspace import Workspace

    _, model, tok = tiny
    calls = []

    def load_trained(root):
        calls.append(root)
        return types.SimpleNamespace(model=model, base_model=model, tokenizer=tok, device="cpu")

    monkeypatch.setitem(
        sys.modules, "finetrail.training.loading", types.SimpleNamespace(load_trained=load_trained)
    )
    ws = Workspace.init(tmp_path / "ws", model="m", version="1", owner="o")
    training = {"adapter": {"sha256": "ab" * 32}, "base_model": {"weights_sha256": "cd" * 32}}
    ws.write_bytes("evidence/training.json", json.dumps(training).encode(), event="t", actor="t")
    rec = audit_workspace_bias(
        workspace=ws.root,
        sensitive=["gender"],
        eval_path=synth / "task_eval.jsonl",
        counterfactual=False,
        settings=BiasAuditSettings(resamples=50, min_group_size=10),
    )
    assert calls == [ws.root]
    assert rec.subject.model == "workspace"
    assert rec.subject.adapter_sha256 == "ab" * 32 and rec.subject.base_weights_sha256 == "cd" * 32
    assert rec.finetune_effect is not None and rec.base is not None


def test_missing_loader_is_a_clear_error(synth, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "finetrail.training.loading", None)  # import fails
    ws = tmp_path / "ws"
    main(["init", str(ws), "--model", "m", "--version", "1", "--owner", "o"])
    rc = main(
        [
            "audit",
            "bias",
            str(ws),
            "--eval",
            str(synth / "task_eval.jsonl"),
            "--sensitive",
            "gender",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--model PATH" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--predictions", "p.jsonl", "--eval", "e.jsonl"], "--predictions excludes --eval"),
        (
            ["--base-predictions", "p.jsonl", "--eval", "e.jsonl"],
            "--base-predictions needs --predictions",
        ),
        (["--eval", "e.jsonl", "--base-model", "."], "--base-model needs --model"),
    ],
)
def test_conflicting_sources_exit_2(tmp_path, capsys, args, needle):
    ws = tmp_path / "ws"
    main(["init", str(ws), "--model", "m", "--version", "1", "--owner", "o"])
    rc = main(["audit", "bias", str(ws), "--sensitive", "gender", *args])
    assert rc == 2 and needle in capsys.readouterr().err


def _training_tokens(tok, prompt, reply):
    """The tokens training feeds for a (user prompt, assistant reply) conversation, and which of
    them carry the loss (training's own encoder: the reference the framing must agree with)."""
    from finetrail.training.formats import Record, encode_records

    rec = Record("messages", messages=(("user", prompt), ("assistant", reply)))
    ids, attn, loss, _ = encode_records(tok, [rec], 512, loss_on="completion")
    n = int(attn[0].sum())
    return ids[0, :n].tolist(), loss[0, :n].tolist()


@pytest.mark.parametrize("template", [None, "chatml"])
def test_chat_framing_scores_the_reply_tokens_training_trained_on(tiny, template):
    """With --prompt-format chat a label is scored as the assistant's reply: the scored tokens
    are the reply's tokens of training's own encoding of that conversation (the closing template
    tokens excluded), and the score equals a plain forward pass over that encoding."""
    import copy

    import torch

    from finetrail.governance.bias._scoring import chat_framing, framed_pairs

    _, model, tok = tiny
    tok = copy.deepcopy(tok)
    if template == "chatml":
        tok.chat_template = (
            "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
        )
    prompts = ["Loan application from A, income 64k. Approve?", "Hi"]
    frame = chat_framing(tok)
    scorer = lm_scorer(model, tok, [" yes", " no"], frame=frame)
    got = scorer(prompts)
    for i, prompt in enumerate(prompts):
        for j, reply in enumerate(["yes", "no"]):
            ids, loss = _training_tokens(tok, prompt, reply)
            (p, c) = framed_pairs(tok, frame, [prompt], reply)[0]
            assert p + c == ids[: len(p) + len(c)]
            # the scored tokens are the loss tokens that spell the reply (training's loss may
            # also cover the template's closing tokens after it; those are not label evidence)
            assert c and all(loss[len(p) + k] == 1 for k in range(len(c)))
            assert reply in tok.decode(c)
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=torch.tensor([p + c])).logits[0], -1)
            manual = sum(float(logp[len(p) - 1 + k, t]) for k, t in enumerate(c))
            assert got[i, j] == pytest.approx(manual, abs=1e-4)
    # the text framing scores something else: the chat framing is not a no-op
    plain = lm_scorer(model, tok, [" yes", " no"])(prompts)
    assert not np.allclose(plain, got, atol=1e-3)


def test_workspace_audit_frames_prompts_as_chat_when_training_used_chat(
    tiny, synth, tmp_path, monkeypatch
):
    """auto: a workspace whose training data was chat conversations is audited in the chat
    framing, recorded in the evidence; text training data keeps the text framing."""
    import types

    from finetrail.governance.bias import audit_workspace_bias
    from finetrail.governance.workspace import Workspace

    _, model, tok = tiny
    monkeypatch.setitem(
        sys.modules,
        "finetrail.training.loading",
        types.SimpleNamespace(
            load_trained=lambda root: types.SimpleNamespace(
                model=model, base_model=model, tokenizer=tok, device="cpu"
            )
        ),
    )
    seen = {}
    for fmt in ("messages", "text"):
        ws = Workspace.init(tmp_path / fmt, model="m", version="1", owner="o")
        training = {"datasets": [{"role": "train", "format": fmt, "sha256": "ab" * 32}]}
        ws.write_bytes(
            "evidence/training.json", json.dumps(training).encode(), event="t", actor="t"
        )
        rec = audit_workspace_bias(
            workspace=ws.root,
            sensitive=["gender"],
            eval_path=synth / "task_eval.jsonl",
            counterfactual=False,
            settings=BiasAuditSettings(resamples=50, min_group_size=10),
        )
        seen[fmt] = rec
    assert seen["messages"].method.prompt_format == "chat"
    assert seen["text"].method.prompt_format == "text"
    assert seen["messages"].task != seen["text"].task


def test_audit_bias_progress_bar_on_stderr_only_and_results_unchanged(tiny, synth, tmp_path):
    """--progress shows the scoring stages on stderr; stdout keeps only the summary, and the
    scores are the same as without the bar (it scores in chunks: the chunks must not matter)."""
    from click.testing import CliRunner

    from finetrail.cli import cli

    path, _, _ = tiny
    records = {}
    for flag in ("--progress", "--no-progress"):
        ws = tmp_path / flag.strip("-")
        assert main(["init", str(ws), "--model", "m", "--version", "1", "--owner", "o"]) == 0
        res = CliRunner().invoke(
            cli,
            [
                "audit", "bias", str(ws), "--eval", str(synth / "task_eval.jsonl"),
                "--sensitive", "gender", "--model", str(path), "--base-model", str(path),
                "--resamples", "50", "--min-group-size", "15", flag,
            ],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        records[flag] = BiasAuditEvidence.read(ws / "evidence" / "bias.json")
        if flag == "--progress":
            assert "scoring the evaluation set" in res.stderr and "120/120" in res.stderr
            assert "counterfactual probes" in res.stderr
            assert "scoring" not in res.stdout and "\r" not in res.stdout
        else:
            assert res.stderr == ""
    a, b = records["--progress"], records["--no-progress"]

    def close(x, y):  # scores in other batches differ in the last float bits only
        if isinstance(x, dict):
            return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
        if isinstance(x, list | tuple):
            return len(x) == len(y) and all(close(i, j) for i, j in zip(x, y, strict=True))
        if isinstance(x, float) and isinstance(y, float):
            return abs(x - y) <= 1e-4
        return x == y

    for part in ("task", "groups", "counterfactual"):
        assert close(a.model_dump()[part], b.model_dump()[part]), part
