"""Batched scoring: the digit tree with shared KV cache equals plain full-sequence scoring,
pruning keeps exactly the leaves above the threshold, padding never changes a score, and the
exposure probe ranks exactly (tree) or extrapolates (skew-normal) as the tokenizer allows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from finetrail.governance.evidence.probes import ProbeSubject
from finetrail.governance.probes import ProbeConfig, ProbeContext, ProbeModels, run_probes
from finetrail.governance.probes.canaries import build_canary_set, draw_canaries
from finetrail.governance.probes.context import ExposureConfig
from finetrail.governance.probes.formats import EMAIL, PIN6, SSN
from finetrail.governance.probes.models import TokenizerAdapter
from finetrail.governance.probes.scoring import (
    TreeBudgetExceeded,
    continuation_logprobs,
    token_logprobs,
    tree_leaf_scores,
)
from finetrail.governance.probes.secret_space import plan_for

SUBJECT = ProbeSubject(adapter_sha256="a" * 64)


def digits(tok: Any) -> list[int]:
    return [tok.convert_tokens_to_ids(str(d)) for d in range(10)]


def test_tree_equals_plain_scoring_with_literal_slots(random_lm: Any, tiny_tokenizer: Any) -> None:
    tok = TokenizerAdapter(tiny_tokenizer)
    prefix = tok.encode("my code is ", special=True)
    dash = tok.encode("-", special=False)
    slots = [digits(tiny_tokenizer), digits(tiny_tokenizer), dash, digits(tiny_tokenizer)]
    leaves = tree_leaf_scores(random_lm, prefix_ids=prefix, slots=slots, chunk=64)
    assert leaves.scored == 10 + 100 + 100 + 1000  # nodes scored at each level
    assert sorted(leaves.indices.tolist()) == list(range(1000))
    pairs = []
    for index in leaves.indices.tolist():
        a, rest = divmod(index, 100)
        b, c = divmod(rest, 10)
        pairs.append((prefix, [slots[0][a], slots[1][b], dash[0], slots[3][c]]))
    plain = np.array(continuation_logprobs(random_lm, pairs))
    np.testing.assert_allclose(leaves.scores, plain, atol=1e-4)


def test_pruning_keeps_exactly_the_leaves_above_threshold(
    tiny_tokenizer: Any, helpers: Any
) -> None:
    # large random weights give peaked next-token distributions, as a trained model has
    peaked = helpers.build_model(len(tiny_tokenizer), hidden=32, seed=5, init_range=0.5).eval()
    prefix = TokenizerAdapter(tiny_tokenizer).encode("pin ", special=True)
    slots = [digits(tiny_tokenizer)] * 4
    full = tree_leaf_scores(peaked, prefix_ids=prefix, slots=slots)
    threshold = float(np.quantile(full.scores, 0.999))
    pruned = tree_leaf_scores(peaked, prefix_ids=prefix, slots=slots, threshold=threshold)
    expected = set(full.indices[full.scores >= threshold + 1e-6].tolist())
    assert (
        expected
        <= set(pruned.indices.tolist())
        <= set(full.indices[full.scores >= threshold - 1e-6].tolist())
    )
    assert pruned.scored < full.scored / 2  # much of the tree was never expanded
    with pytest.raises(TreeBudgetExceeded):
        tree_leaf_scores(peaked, prefix_ids=prefix, slots=slots, max_leaves=500)


def test_padding_never_changes_a_score(random_lm: Any, tiny_tokenizer: Any) -> None:
    tok = TokenizerAdapter(tiny_tokenizer)
    texts = ["a", "short one", "a much longer sentence with several words and 12345 digits in it"]
    seqs = [tok.encode(t, special=True) for t in texts]
    together = token_logprobs(random_lm, seqs, moments=True)
    for seq, lp, mu, sd in zip(seqs, together.logprobs, together.mu, together.sigma, strict=True):
        alone = token_logprobs(random_lm, [seq], moments=True)
        assert len(lp) == len(seq) - 1
        np.testing.assert_allclose(lp, alone.logprobs[0], atol=1e-5)
        np.testing.assert_allclose(mu, alone.mu[0], atol=1e-5)
        np.testing.assert_allclose(sd, alone.sigma[0], atol=1e-5)
        assert (mu <= 0).all() and (sd >= 0).all()


def test_left_padded_continuations_match_one_at_a_time(random_lm: Any, tiny_tokenizer: Any) -> None:
    tok = TokenizerAdapter(tiny_tokenizer)
    pairs = [
        (tok.encode(p, special=True), tok.encode(c, special=False))
        for p, c in [
            ("a", " b"),
            ("my account pin is", " 123456"),
            ("x" * 30, " short"),
            ("Customer note: write to", " me at abcdef@ghijkl.com please"),
            ("q", ""),
        ]
    ]
    together = continuation_logprobs(random_lm, pairs)
    for (p, c), value in zip(pairs, together, strict=True):
        alone = token_logprobs(random_lm, [p + c]).logprobs[0]
        expected = float(alone[len(alone) - len(c) :].sum()) if c else 0.0
        assert value == pytest.approx(expected, abs=1e-4)


def test_plan_uses_the_tree_only_when_tokenization_allows(
    tiny_tokenizer: Any, helpers: Any
) -> None:
    tok = TokenizerAdapter(tiny_tokenizer)
    assert plan_for(tok, PIN6, ["123456"]).tree
    assert plan_for(tok, SSN, ["123-45-6789"]).tree
    assert not plan_for(tok, EMAIL, ["abcdef@ghijkl.com"]).tree  # letters merge into BPE tokens
    merged = TokenizerAdapter(helpers.build_tokenizer(helpers.corpus(300, 5), split_digits=False))
    assert not plan_for(merged, PIN6, ["123456"]).tree


def _context(model: Any, tokenizer: Any, canaries: Any, **exposure: Any) -> ProbeContext:
    return ProbeContext(
        models=ProbeModels(model=model, tokenizer=tokenizer),
        subject=SUBJECT,
        canaries=canaries,
        config=ProbeConfig(exposure=ExposureConfig(**exposure)),
    )


def test_exposure_exact_ranks_agree_between_full_and_pruned_tree(
    random_lm: Any, tiny_tokenizer: Any, helpers: Any
) -> None:
    import copy

    cs = build_canary_set(draw_canaries(formats=[PIN6], m=6, seed=11), repetitions=(1, 4, 16))
    model = copy.deepcopy(random_lm)  # memorise one canary so that a pruned tree can rank it
    x, m = helpers.encode(tiny_tokenizer, [cs.canaries[0].text] * 8)
    helpers.train_plain(model, x, m, steps=60, batch=8, lr=1e-2)
    full = run_probes(_context(model, tiny_tokenizer, cs), only="exposure").records["exposure"]
    assert full.formats[0].method == "exact_tree"
    assert full.formats[0].candidates_scored >= 10**6
    # a budget below the space forces a pruned tree for the well-ranked canaries
    pruned = run_probes(
        _context(model, tiny_tokenizer, cs, max_exact_candidates=300_000, samples=500),
        only="exposure",
    ).records["exposure"]
    assert pruned.formats[0].method == "mixed"
    by_id = {c.id: c for c in full.canaries}
    exact = [c for c in pruned.canaries if c.method == "exact"]
    assert cs.canaries[0].id in {c.id for c in exact}
    for c in exact:
        assert c.rank == by_id[c.id].rank
    assert by_id[cs.canaries[0].id].exposure_bits > 15  # the memorised one stands out
    for c in full.canaries:
        assert c.exposure_bits == pytest.approx(PIN6.space_bits - math.log2(c.rank))
        assert 0 <= c.exposure_bits <= PIN6.space_bits
    others = [c.exposure_bits for c in full.canaries if c.id != cs.canaries[0].id]
    assert sum(others) / len(others) < 8


def test_exposure_skew_normal_when_no_tree(random_lm: Any, helpers: Any) -> None:
    tokenizer = helpers.build_tokenizer(helpers.corpus(300, 5), split_digits=False)
    model = helpers.build_model(len(tokenizer), hidden=32, seed=4).eval()
    cs = build_canary_set(draw_canaries(formats=[PIN6, EMAIL], m=6, seed=2), repetitions=(1,))
    rec = run_probes(_context(model, tokenizer, cs, samples=300), only="exposure").records[
        "exposure"
    ]
    assert {f.method for f in rec.formats} == {"skew_normal"}
    for c in rec.canaries:
        assert c.method == "sampled_upper_bound" and c.rank is None
        assert 0 <= c.exposure_bits <= c.space_bits
        # from the safe side: never below the skew-normal point estimate
        assert c.estimate_bits is not None and c.exposure_bits >= c.estimate_bits
        assert c.sampled_above is not None and 0 <= c.sampled_above <= 300
    assert rec.controls.n == sum(not c.included for c in cs.canaries)


def test_sampled_upper_bound_never_under_reads() -> None:
    """The issue's case: a canary of 15.7 bits in a 2^20 space, read from 4,000 samples, must not
    read below 15.7 (the skew-normal fit read 14.5); the bound holds at 95% over random draws."""
    import random

    from finetrail.governance.probes.exposure import sampled_upper_bits

    space_bits = 20.0
    rng = random.Random(0)
    for true_bits in (3.0, 6.0, 9.0, 15.7):
        tail = 2.0**-true_bits
        misses = 0
        for _ in range(200):
            above = sum(rng.random() < tail for _ in range(4000))
            if sampled_upper_bits(above, 4000, space_bits) < true_bits - 1e-9:
                misses += 1
        assert misses <= 0.05 * 200 + 5, (true_bits, misses)
    assert sampled_upper_bits(0, 4000, space_bits) == space_bits
    assert 0 <= sampled_upper_bits(4000, 4000, space_bits) < 2e-3
