"""Commands of the probes: ``finetrail probe`` and ``finetrail canaries plant|show|plan``.

Light at import: the probe command imports torch (through the training layer's loader) only when
it runs.
"""

from __future__ import annotations

import json
from typing import Any

import click

from finetrail.cli_options import actor_option, tracking_uri_option
from finetrail.errors import EXIT_OK, InputError
from finetrail.progress import Bar, progress_option, wanted

PROBE_NAMES = "exposure,extraction,mia,dp-audit"


def _summary(name: str, record: Any) -> str:
    if name == "exposure":
        reps = ", ".join(
            f"{k}x {v.mean_bits:.2f}"
            for k, v in record.by_repetition.items()
            if v.mean_bits is not None
        )
        ctrl = record.controls.mean_bits
        return (
            f"max {record.max_bits:.2f} of {record.space_bits:.2f} bits; mean by repetition: "
            f"{reps or '-'}; controls {ctrl:.2f}"
            if ctrl is not None
            else f"max {record.max_bits:.2f} of {record.space_bits:.2f} bits; {reps or '-'}"
        )
    if name == "extraction":
        return (
            f"{record.memorized_identifiers} memorised identifiers attributed to the fine-tune "
            f"(rate {record.memorized_rate:.4f}); base model also emitted "
            f"{record.base_model_matches}; {record.prompts} prompts"
        )
    if name == "membership":
        best = max(record.attacks.items(), key=lambda kv: kv[1].auc)
        tpr = best[1].tpr_at_1pct_fpr
        tpr_text = (
            f"{tpr:.3f}" if tpr is not None else f"not resolvable ({record.nonmembers} non-members)"
        )
        blind = record.blind_baseline
        line = (
            f"max AUC {record.max_auc:.3f} ({best[0]}); TPR at 1% FPR {tpr_text}; "
            f"{record.members} members vs {record.nonmembers}"
            + (f"; blind baseline AUC {blind.result.auc:.3f}" if blind is not None else "")
        )
        ex = record.exchangeability
        if ex is None:
            return (
                line
                + "\n    WARNING: no base model to check that members and non-members are alike"
            )
        if not ex.ok:
            return line + (
                f"\n    WARNING: the base model already tells members from non-members (AUC "
                f"{ex.base_auc:.2f} [{ex.base_auc_ci.low:.2f}, {ex.base_auc_ci.high:.2f}]): the "
                "held-out set differs from the training data, so these AUCs measure that "
                "difference, not memorisation. Draw the held-out records from the same source "
                "and mix as the training records."
            )
        return line + f"; base-model AUC {ex.base_auc:.2f} (held-out set comparable)"
    if name == "dp_audit":
        claim = (
            f"claimed epsilon={record.claimed_epsilon:g}"
            if record.claimed_epsilon is not None
            else "no DP claim"
        )
        single = record.single_copy_canaries
        line = (
            f"empirical epsilon >= {record.empirical_epsilon_lower_bound:.3f} (ceiling "
            f"{record.ceiling:.3f} with {single if single is not None else '?'} single-copy of "
            f"{record.canaries} canaries, delta {record.delta_used:g}) at "
            f"{record.confidence:.0%} ({claim}): {record.verdict}"
        )
        if record.verdict == "inconclusive":
            line += (
                "\n    the audit could not have contradicted the claim: its ceiling is below it; "
                "plan more single-copy canaries with `finetrail canaries plan`"
            )
        return line
    return ""


def _echo_base(run: Any, *, as_json: bool) -> None:
    """Say which base model the probes compared with (stderr when it differs from training)."""
    subject = next((getattr(r, "subject", None) for r in run.records.values()), None)
    base = getattr(subject, "base_model", None)
    if base is None:
        return
    if base.matches_training:
        if not as_json:
            click.echo(f"base model: {base.path} (digests match the training evidence)")
    else:
        click.echo(
            f"warning: base model {base.path} differs from the one training used (allowed by "
            f"--allow-base-mismatch): {'; '.join(base.mismatches)}",
            err=True,
        )


@click.command("probe")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.option("--only", default=None, help=f"Comma-separated probes to run: {PROBE_NAMES}.")
@click.option(
    "--train-data",
    type=click.Path(dir_okay=False),
    default=None,
    help="Training JSONL (default: the augmented set recorded with the canaries).",
)
@click.option(
    "--heldout-data",
    type=click.Path(dir_okay=False),
    default=None,
    help="Held-out JSONL never trained on (non-members for membership inference).",
)
@click.option("--text-field", default=None, help="JSONL field holding the text (default: text).")
@click.option(
    "--data-format",
    type=click.Choice(["auto", "text", "chat"]),
    default="auto",
    show_default=True,
    help="Training data format; auto: the canary set's, else detected from the first record. "
    "chat: conversations rendered with the template training used.",
)
@click.option(
    "--base-model",
    "base_model",
    type=click.Path(file_okay=False),
    default=None,
    help="The base model's folder (default: the one the training evidence names); its digests "
    "must match the evidence.",
)
@click.option(
    "--allow-base-mismatch",
    is_flag=True,
    help="Probe with a base model whose digests differ from the training evidence (the records "
    "state the mismatch).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Probe settings (YAML or JSON; see ProbeConfig).",
)
@actor_option("runs the probes")
@tracking_uri_option()
@progress_option("probing (one bar per probe, over its candidates or prompts)")
@click.option("--json", "as_json", is_flag=True, help="Print the records written as JSON.")
def probe_cmd(
    workspace: str,
    only: str | None,
    train_data: str | None,
    heldout_data: str | None,
    text_field: str | None,
    data_format: str,
    base_model: str | None,
    allow_base_mismatch: bool,
    config_path: str | None,
    actor: str | None,
    tracking_uri: str | None,
    progress: bool | None,
    as_json: bool,
) -> int:
    """Run memorisation and privacy probes against a trained WORKSPACE and write evidence.

    What each probe needs (a probe that lacks it is skipped and says why; exit 2 when every
    probe was skipped, and --only makes a probe that cannot run an error):

    \b
      exposure    canaries planted before training (`finetrail canaries plant`)
      extraction  the training data (recorded by `canaries plant`, or --train-data)
      mia         the training data and --heldout-data (records never trained on)
      dp-audit    at least two planted canaries
    """
    from finetrail.extras import require_extra

    require_extra("train", command="probe")
    from finetrail.governance.probes.context import ProbeConfig
    from finetrail.governance.probes.registry import select_probes
    from finetrail.governance.probes.runner import probe_workspace

    if only is not None:
        select_probes(only)  # reject unknown names before loading anything
    config = ProbeConfig.load(config_path) if config_path else None
    bar = Bar(wanted(progress))
    try:
        run = probe_workspace(
            workspace,
            only=only,
            config=config,
            train_data=train_data,
            heldout_data=heldout_data,
            text_field=text_field,
            actor=actor,
            tracking_uri_arg=tracking_uri,
            progress=bar if bar.enabled else None,
            base_model=base_model,
            allow_base_mismatch=allow_base_mismatch,
            data_format=data_format,
        )
    finally:
        bar.close()
    if as_json:
        click.echo(
            json.dumps(
                {k: r.to_json_dict() for k, r in run.records.items()}, indent=2, sort_keys=True
            )
        )
    else:
        for name, record in run.records.items():
            click.echo(f"{name}: {_summary(name, record)}  [{run.seconds[name]:.1f}s]")
        for name, reason in run.skipped.items():
            click.echo(f"{name}: skipped ({reason})")
    for warning in run.warnings:
        click.echo(f"warning: {warning}", err=True)
    _echo_base(run, as_json=as_json)
    if not run.records:
        raise InputError(
            f"no probe ran: all {len(run.skipped)} were skipped, so no evidence was written",
            why="each probe needs inputs this workspace or the command line did not give",
            fix="plant canaries before training (`finetrail canaries plant`) and pass "
            "--heldout-data; `finetrail probe --help` lists what each probe needs",
        )
    return EXIT_OK


@click.group("canaries")
def canaries_group() -> None:
    """Plan and plant canaries before training, and inspect the committed set."""


def _int_list(value: str, option: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise InputError(
            f"not a comma-separated list of integers: {value!r}", field=option
        ) from exc
    if not out or any(v < 1 for v in out):
        raise InputError(f"need positive integers: {value!r}", field=option)
    return out


@canaries_group.command("plant")
@click.argument("workspace", type=click.Path(file_okay=False))
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="Training JSONL.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the augmented training JSONL.",
)
@click.option(
    "--m",
    "m",
    default=90,
    show_default=True,
    type=click.IntRange(min=2),
    help="Canaries drawn (each included with probability 1/2).",
)
@click.option(
    "--formats",
    default="pin6",
    show_default=True,
    help="Comma-separated canary formats (pin6, ssn, email).",
)
@click.option(
    "--repetitions",
    default="1,4,16",
    show_default=True,
    help="Copies of an included canary, cycled over the canaries.",
)
@click.option(
    "--design",
    type=click.Choice(["pin", "new-token", "bigram"]),
    default="pin",
    show_default=True,
    help="pin: the --formats given; new-token: secrets of symbols absent from the data; "
    "bigram: letters whose pairs are the rarest in the data (Panda et al. 2025).",
)
@click.option(
    "--heldout-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Hold out a seeded random part of the data here (the membership probe's non-members).",
)
@click.option(
    "--heldout-fraction",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Share of the data held out with --heldout-out.",
)
@click.option("--seed", type=int, default=None, help="Seed (default: the OS's randomness).")
@click.option(
    "--text-field", default="text", show_default=True, help="JSONL field holding the text."
)
@click.option(
    "--data-format",
    type=click.Choice(["auto", "text", "chat"]),
    default="auto",
    show_default=True,
    help="text: {text-field: ...} records; chat: {messages: [...]} conversations (each canary "
    "copy its own conversation, the canary as the assistant's reply); auto: from the first "
    "record.",
)
@actor_option("plants the canaries")
def plant_cmd(
    workspace: str,
    data: str,
    out: str,
    m: int,
    formats: str,
    repetitions: str,
    design: str,
    heldout_out: str | None,
    heldout_fraction: float,
    seed: int | None,
    text_field: str,
    data_format: str,
    actor: str | None,
) -> int:
    """Draw canaries, write the augmented training set and commit the set before training."""
    from finetrail.governance.probes.canaries import plant_file

    reps = _int_list(repetitions, "--repetitions")
    names = tuple(f.strip() for f in formats.split(",") if f.strip())
    cs = plant_file(
        workspace,
        data=data,
        out=out,
        formats=names,
        m=m,
        repetitions=reps,
        seed=seed,
        text_field=text_field,
        actor=actor,
        design=design,  # type: ignore[arg-type]
        heldout_out=heldout_out,
        heldout_fraction=heldout_fraction,
        data_format=data_format,
    )
    added = cs.lineage.examples_added if cs.lineage else 0
    kind = "chat " if cs.data_format == "messages" else ""
    click.echo(
        f"planted {len(cs.included)} of {len(cs.canaries)} {design} {kind}canaries ({added} "
        f"examples) into {out}"
    )
    if cs.lineage is not None and cs.lineage.heldout is not None:
        click.echo(
            f"held out {cs.lineage.heldout.records} of {cs.lineage.source.records} records at "
            f"random into {heldout_out} (pass it as --heldout-data to `finetrail probe`)"
        )
    click.echo(
        f"committed artifacts/canaries.json: canaries {cs.canaries_sha256[:16]}..., "
        f"inclusion {cs.inclusion_sha256[:16]}..."
    )
    return EXIT_OK


@canaries_group.command("show")
@click.argument("workspace", type=click.Path(file_okay=False))
def show_cmd(workspace: str) -> int:
    """Summarise the committed canary set (counts and digests; never the secrets)."""
    from collections import Counter

    from finetrail.governance.probes.canaries import load_canaries
    from finetrail.governance.workspace import Workspace

    cs = load_canaries(Workspace.open(workspace))
    if cs is None:
        raise InputError(
            "no canary set committed",
            path=workspace,
            fix="plant canaries with `finetrail canaries plant`",
        )
    counts = Counter((c.format, c.repetitions, c.included) for c in cs.canaries)
    click.echo(f"canaries: {len(cs.canaries)}, included: {len(cs.included)}")
    for (fmt, reps, inc), n in sorted(counts.items()):
        click.echo(f"  {fmt} x{reps} {'included' if inc else 'control'}: {n}")
    click.echo(f"canaries_sha256: {cs.canaries_sha256}")
    click.echo(f"inclusion_sha256: {cs.inclusion_sha256}")
    return EXIT_OK


@canaries_group.command("plan")
@click.option(
    "--count",
    required=True,
    type=click.IntRange(min=1),
    help="Canaries to plant (each included with probability 1/2).",
)
@click.option(
    "--delta",
    required=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="The delta of the DP claim the audit tests.",
)
@click.option(
    "--repetitions",
    default="1",
    show_default=True,
    help="Copies cycle as for `canaries plant`; only canaries inserted once count per example.",
)
@click.option("--formats", default="pin6", show_default=True, help="As for `canaries plant`.")
@click.option(
    "--design",
    type=click.Choice(["pin", "new-token", "bigram"]),
    default="pin",
    show_default=True,
    help="As for `canaries plant` (the ceiling depends on the count, not the design).",
)
@click.option(
    "--confidence",
    default=0.95,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True),
    help="Confidence of the lower bound on epsilon.",
)
@click.option(
    "--selection",
    type=click.Choice(["bonferroni", "split"]),
    default="bonferroni",
    show_default=True,
    help="The dp-audit's threshold selection.",
)
@click.option("--claim", type=click.FloatRange(min=0), default=None, help="An epsilon to reach.")
def plan_cmd(
    count: int,
    delta: float,
    repetitions: str,
    formats: str,
    design: str,
    confidence: float,
    selection: str,
    claim: float | None,
) -> int:
    """Print the dp-audit's ceiling for a canary count and delta, before training."""
    from finetrail.extras import require_extra

    require_extra("audit", command="canaries plan", modules={"audit": ("numpy", "scipy")})
    from finetrail.governance.probes.dp_audit import (
        DEFAULT_FRACTIONS,
        canaries_needed,
        design_ceiling,
    )

    reps = _int_list(repetitions, "--repetitions")
    n_formats = (len([f for f in formats.split(",") if f.strip()]) or 1) if design == "pin" else 1
    single = sum(1 for i in range(count) if reps[(i // n_formats) % len(reps)] == 1)
    ceiling = design_ceiling(
        canaries=single, delta=delta, confidence=confidence, selection=selection
    )
    click.echo(
        f"{design} canaries: {count}, inserted once: {single} (the per-example bound uses only "
        "these); "
        f"delta {delta:g}, {confidence:.0%} confidence, {selection} over "
        f"{len(DEFAULT_FRACTIONS)} guess counts"
    )
    click.echo(
        f"ceiling: {ceiling:.3f} (the largest per-example epsilon lower bound this audit can "
        "report; a claim at or above it reads 'inconclusive', never 'consistent')"
    )
    if claim is not None:
        budget = canaries_needed(
            claim=claim, delta=delta, confidence=confidence, selection=selection
        )
        if budget.needed is None:
            click.echo(
                f"claim {claim:g}: no count up to {budget.searched:,} single-copy canaries can "
                f"contradict it at delta {delta:g} (the ceiling peaks at {budget.peak:.3f} near "
                f"{budget.peak_at:,}); rely on the mechanism audit (evidence/mechanism.json)"
            )
        else:
            click.echo(
                f"claim {claim:g}: needs at least {budget.needed:,} single-copy canaries for the "
                f"audit to be able to contradict it ({'met' if single >= budget.needed else 'not met'}"
                " by this plan; that is with every guess right: real scores need more)"
            )
    return EXIT_OK


def register(group: click.Group) -> None:
    group.add_command(probe_cmd)
    group.add_command(canaries_group)
