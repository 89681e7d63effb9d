"""The training facade: :func:`train` runs one fine-tune and writes its evidence.

Order of work: config and datasets are checked (nothing loaded yet); the base model is
fingerprinted, loaded, moved to its device and wrapped; the run is planned (steps, sample rate,
noise, clipping mode); optionally ``--check-dp``; then training. Evidence is written only at the
end: the adapter under ``artifacts/adapter/`` and ``evidence/training.json`` (``completed: true``).
An interruption (Ctrl-C) or a failure after training started writes a ``completed: false``
record that names no adapter, then re-raises. Under ``torchrun`` only rank 0 tracks and writes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from finetrail.errors import CheckFailed, ConfigError, FinetrailError, IntegrityError
from finetrail.governance import clock
from finetrail.governance.evidence.registry import location
from finetrail.governance.evidence.training import RunStatus, TrainingEvidence
from finetrail.governance.workspace import Workspace, default_actor
from finetrail.training.config import LoadedConfig, PrivacyConfig, TrainConfig, load_config
from finetrail.training.data import Datasets, preflight

__all__ = ["TRAINING_RECORD", "train"]

TRAINING_RECORD = location("training")


def _software() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("finetrail", "torch", "transformers", "peft", "opacus", "mlflow"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def _dist() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=10))
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def _check_fresh(ws: Workspace) -> None:
    path = ws.path(TRAINING_RECORD)
    if path.is_file():
        prev = TrainingEvidence.read(path)
        if prev.completed:
            raise ConfigError(
                "this workspace already holds a completed training run",
                path=str(path),
                why="a workspace documents one fine-tune; its probes and reviews refer to that adapter",
                fix="create a new workspace (finetrail init) for another run",
            )


def _param_digest(params: list[Any]) -> str:
    h = hashlib.sha256()
    for p in params:
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _send_record(record: TrainingEvidence) -> None:
    import torch.distributed as dist

    dist.broadcast_object_list([record.canonical_bytes().decode("utf-8")], src=0)


def _receive_record() -> TrainingEvidence:
    """Ranks other than 0 return the record rank 0 wrote."""
    import json

    import torch.distributed as dist

    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0)
    return TrainingEvidence.parse(json.loads(box[0]), source="rank 0")


def train(
    *,
    config: str | os.PathLike[str] | TrainConfig | LoadedConfig,
    workspace: str | os.PathLike[str] | Workspace,
    check_dp: bool = False,
    progress: bool = False,
    actor: str | None = None,
    tracking_uri: str | None = None,
    plant_mechanism_bug: str | None = None,
) -> TrainingEvidence:
    """Fine-tune as ``config`` says and write the evidence into ``workspace``.

    ``plant_mechanism_bug`` (a :data:`~finetrail.training.mechanism_bugs.PLANTED_BUGS` name) breaks
    the DP optimizer on purpose, for demonstrations that a broken release fails the gate: the
    evidence keeps stating the planned mechanism, as with a real bug, and the ledger's training
    event names the planted bug.

    Returns the :class:`TrainingEvidence` written (on ranks other than 0 under ``torchrun``: the
    same record, not written). Raises :class:`~finetrail.errors.FinetrailError` subclasses.
    """
    if isinstance(config, LoadedConfig):
        loaded = config
    elif isinstance(config, TrainConfig):
        from finetrail.governance.io import canonical_json, sha256_bytes

        loaded = LoadedConfig(
            config=config,
            path=None,
            sha256=sha256_bytes(canonical_json(config.model_dump(mode="json"))),
        )
    else:
        loaded = load_config(config)
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    source = str(loaded.path) if loaded.path else "config"
    cfg = loaded.config
    _check_fresh(ws)
    datasets = preflight(cfg, workspace_root=ws.root, source=source)
    if isinstance(cfg.privacy, PrivacyConfig) and cfg.privacy.randomness == "secure":
        from finetrail.training.engine import require_csprng

        require_csprng()  # before anything is loaded or written
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not isinstance(cfg.privacy, PrivacyConfig):
        raise ConfigError(
            "--nproc > 1 runs Opacus DPDDP and needs privacy settings",
            path=source,
            field="privacy",
            fix="train the non-private control (privacy: none) on one process",
        )
    from finetrail.training.model import fingerprint_base_model

    base = fingerprint_base_model(cfg)  # before any heavy import: a missing folder fails fast
    _, world, _ = _dist()
    try:
        result = _Run(
            loaded,
            ws,
            datasets,
            base,
            actor=default_actor(actor, owner=ws.metadata.owner),
            progress=progress,
            check_dp=check_dp,
            tracking_uri=tracking_uri,
            plant_mechanism_bug=plant_mechanism_bug,
        ).run()
        if world > 1:
            import torch.distributed as dist

            # Rank 0 writes the evidence after the last step; the others wait for it here, so no
            # process tears the group down while a peer still holds it (a gloo peer that leaves
            # early can abort the other at exit). On failure torchrun stops the others.
            dist.barrier()
        return result
    finally:
        if world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


class _Run:
    """One run's moving parts (kept together so an interruption can still be described)."""

    def __init__(
        self,
        loaded: LoadedConfig,
        ws: Workspace,
        datasets: Datasets,
        base: Any,
        *,
        actor: str,
        progress: bool,
        check_dp: bool,
        tracking_uri: str | None = None,
        plant_mechanism_bug: str | None = None,
    ) -> None:
        self.loaded, self.ws, self.datasets, self.base = loaded, ws, datasets, base
        self.tracking_uri = tracking_uri
        self.plant_bug = plant_mechanism_bug
        self.actor, self.progress, self.check_dp = actor, progress, check_dp
        self.cfg: TrainConfig = loaded.config
        self.tracker: Any = None
        self.facts: Any = None
        self.train_loss_mask: Any = None  # prompt/completion and chat data: the loss tokens

    def run(self) -> TrainingEvidence:
        import torch

        from finetrail.training.model import build_model, resolve_device

        rank, world, local_rank = _dist()
        self.rank = rank
        device = resolve_device(self.cfg.device)
        from finetrail.training.engine import check_precision

        check_precision(self.cfg, device)  # before the model is loaded
        if world > 1 and device.type == "cuda":
            device = torch.device("cuda", local_rank)
        dp = isinstance(self.cfg.privacy, PrivacyConfig)
        started = clock.now()
        built = build_model(self.cfg, device=device, dp=dp)
        trainable, total = built.counts()
        from finetrail.training.data import encode
        from finetrail.training.engine import plan_run
        from finetrail.training.evidence import RunFacts
        from finetrail.training.loop import RunState

        train_ids, train_mask, self.train_loss_mask, notes = encode(
            built.tokenizer, self.datasets.sampled_records, self.cfg.data
        )
        built.adjustments.extend(notes)
        plan = plan_run(
            self.cfg,
            sampled_records=train_ids.shape[0],
            private_records=len(self.datasets.train.texts),
            world_size=world,
            seq_len=train_ids.shape[1],
            model=built.model,
        )
        self.facts = RunFacts(
            loaded=self.loaded,
            base=self.base,
            datasets=self.datasets,
            method_config=self.cfg.method.model_dump(mode="json"),
            trainable_parameters=trainable,
            total_parameters=total,
            base_parameters=built.base_parameters,
            plan=plan,
            state=RunState(),
            adjustments=built.adjustments,
            device=str(device),
            started=started,
            finished=started,
            software=_software(),
        )
        if self.check_dp and isinstance(self.cfg.privacy, PrivacyConfig):
            self._check_dp(plan)  # on by default for DP runs; a run without DP has nothing to check
        try:
            return self._train(built, plan, train_ids, train_mask, device, dp)
        except KeyboardInterrupt:
            self._abort("interrupted", "interrupted by the user (Ctrl-C)", "KILLED")
            raise
        except FinetrailError as err:
            self._abort("failed", err.what, "FAILED")
            raise
        except Exception as err:
            self._abort("failed", f"{type(err).__name__}: {err}", "FAILED")
            raise

    def _check_dp(self, plan: Any) -> None:
        from finetrail.training.dp_check import check_per_sample_gradients

        if not isinstance(self.cfg.privacy, PrivacyConfig):
            raise ConfigError(
                "--check-dp needs privacy settings (privacy: none trains without DP)",
                field="privacy",
            )
        report = check_per_sample_gradients(
            self.cfg,
            texts=self.datasets.train.texts,
            records=self.datasets.train.records,
            mode=plan.clipping_mode,
        )
        self.facts.dp_check = report.record
        if not report.record.passed:
            raise CheckFailed(
                f"per-sample gradients disagree with the brute-force loop: relative error "
                f"{report.record.max_relative_error:.3g} > {report.record.tolerance:g}"
                + (f" ({'; '.join(report.worst)})" if report.worst else ""),
                why="Opacus would clip the wrong per-example gradients; the DP claim would not hold",
                fix="report the method and model; try privacy.clipping: hooks",
            )

    def _train(
        self, built: Any, plan: Any, train_ids: Any, train_mask: Any, device: Any, dp: bool
    ) -> TrainingEvidence:
        from torch.utils.data import TensorDataset

        from finetrail.training.accounting import epsilon_rdp_curve
        from finetrail.training.data import tokenize
        from finetrail.training.engine import build_engine
        from finetrail.training.loop import mechanism_claim, run_loop

        cfg, facts = self.cfg, self.facts
        ewc = None
        if cfg.optim.ewc is not None:
            from finetrail.training.ewc import EWC

            assert self.datasets.generic is not None
            sample = list(self.datasets.generic.texts[: cfg.optim.ewc.fisher_samples])
            g_ids, g_mask = tokenize(built.tokenizer, sample, cfg.data.max_length)
            ewc = EWC.estimate(
                model=built.model,
                method=built.method,
                params=built.trainable(),
                input_ids=g_ids.to(device),
                attention_mask=g_mask.to(device),
                strength=cfg.optim.ewc.strength,
            )
            facts.ewc_fisher_sha256 = self.datasets.generic.sha256
        engine = build_engine(
            cfg,
            model=built.model,
            plan=plan,
            dataset=TensorDataset(
                train_ids,
                train_mask,
                *([] if self.train_loss_mask is None else [self.train_loss_mask]),
            ),
            distributed=plan.world_size > 1,
            post_privatise=ewc.add_gradient if ewc is not None else None,
        )
        if self.plant_bug is not None:
            from finetrail.training.mechanism_bugs import PLANTED_BUGS, plant

            if not dp or self.plant_bug not in PLANTED_BUGS:
                raise ConfigError(
                    f"cannot plant mechanism bug {self.plant_bug!r} in this run",
                    field="plant_mechanism_bug",
                    fix=f"a DP run and one of {', '.join(sorted(PLANTED_BUGS))}",
                )
            plant(engine.optimizer, self.plant_bug, mode=plan.clipping_mode, hooks=engine.hooks)
        validation = None
        if self.datasets.validation is not None:
            from finetrail.training.data import encode

            # validation loss: per record, the mean over the tokens the training loss is taken
            # on (completion / assistant tokens for those formats), then over records
            v_ids, v_mask, v_loss, _ = encode(
                built.tokenizer, self.datasets.validation.records, cfg.data
            )
            validation = (v_ids, v_mask) if v_loss is None else (v_ids, v_mask, v_loss)
        eps_at = None
        privacy = cfg.privacy
        if isinstance(privacy, PrivacyConfig):
            eps_at = epsilon_rdp_curve(
                noise_multiplier=plan.noise_multiplier,
                sample_rate=plan.sample_rate,
                delta=privacy.delta,
            )
        self._start_tracking(plan, built)
        tracker = self.tracker

        def on_step(step: int, loss: float) -> None:
            if tracker is not None:
                tracker.metric("train_loss", loss, step)
                if eps_at is not None:
                    tracker.metric("epsilon_rdp", eps_at(step), step)

        def on_eval(step: int, loss: float) -> None:
            if tracker is not None:
                tracker.metric("val_loss", loss, step)

        run_loop(
            engine=engine,
            plan=plan,
            method=built.method,
            device=device,
            state=facts.state,
            validation=validation,
            eval_every=cfg.optim.eval_every or plan.steps_per_epoch,
            early_stopping=cfg.optim.early_stopping,
            rank=self.rank,
            dp=dp,
            progress=self.progress,
            on_step=on_step,
            on_eval=on_eval,
            epsilon_at=eps_at,
            # the white-box audit tests the optimizer against what the evidence will state
            mechanism=(
                mechanism_claim(plan, max_grad_norm=privacy.max_grad_norm, delta=privacy.delta)
                if dp and isinstance(privacy, PrivacyConfig) and plan.noise_multiplier is not None
                else None
            ),
            post_processing="ewc" if ewc is not None else None,
        )
        if dp and isinstance(privacy, PrivacyConfig) and plan.noise_multiplier is not None:
            from finetrail.training.execution import check_execution

            facts.execution = check_execution(
                engine,
                noise_multiplier=plan.noise_multiplier,
                max_grad_norm=privacy.max_grad_norm,
                sample_rate=plan.sample_rate,
                expected_batch_size=plan.expected_batch_size,
                world_size=plan.world_size,
                steps=facts.state.step,
            )
        engine.close()
        self._finish_accounting(plan)
        if plan.world_size > 1:
            self._gather_ranks(engine, facts)
        facts.finished = clock.now()
        if self.rank != 0:
            return _receive_record()
        with tempfile.TemporaryDirectory(prefix="finetrail-adapter-") as tmp:
            from finetrail.training.artifacts import add_to_workspace, save_weights

            folder = Path(tmp) / "adapter"
            main, kind = save_weights(
                built.model,
                built.method,
                folder,
                base_model_name=self.base.name or "unknown",
                max_shard_size=cfg.save.max_shard_size,
            )
            if tracker is not None:
                from finetrail.governance.io import sha256_file

                tracker.log_adapter(folder, sha256=sha256_file(folder / main))
            facts.adapter = add_to_workspace(self.ws, folder, main, kind, actor=self.actor)
        record = self._write("completed", None, "FINISHED")
        if plan.world_size > 1:
            _send_record(record)
        return record

    def _start_tracking(self, plan: Any, built: Any) -> None:
        if self.rank != 0 or not self.cfg.tracking.mlflow:
            return
        from finetrail.training.tracking import MlflowTracker

        name = self.ws.metadata.model
        self.tracker = MlflowTracker(
            workspace_root=self.ws.root,
            experiment=self.cfg.tracking.experiment or name,
            registered_model=self.cfg.tracking.registered_model or name,
            tracking_uri=self.tracking_uri,
        )
        params = {
            "config": self.cfg.model_dump(mode="json"),
            "plan": {
                "total_steps": plan.total_steps,
                "sample_rate": plan.sample_rate,
                "noise_multiplier": plan.noise_multiplier,
                "clipping_mode": plan.clipping_mode,
                "expected_batch_size": plan.expected_batch_size,
                "processes": plan.world_size,
                "trainable_parameters": self.facts.trainable_parameters,
            },
        }
        self.tracker.start(
            params=params,
            datasets=self.datasets,
            tags={
                "finetrail.workspace": str(self.ws.root.resolve()),
                "finetrail.method": built.method,
                "finetrail.config_sha256": self.loaded.sha256,
            },
        )
        self.facts.mlflow = self.tracker.record()

    def _finish_accounting(self, plan: Any) -> None:
        from finetrail.training.accounting import Accounting

        privacy = self.cfg.privacy
        if isinstance(privacy, PrivacyConfig):
            self.facts.accounting = Accounting.compute(
                noise_multiplier=plan.noise_multiplier,
                sample_rate=plan.sample_rate,
                steps=self.facts.state.step,
                delta=privacy.delta,
            )
            if self.tracker is not None:
                self.tracker.epsilon_curve(self.facts.accounting.epsilon_per_step)

    def _gather_ranks(self, engine: Any, facts: Any) -> None:
        import torch
        import torch.distributed as dist

        from finetrail.governance.io import canonical_json, sha256_bytes

        digest = _param_digest(engine.params)
        digests: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(digests, digest)
        # what each rank sampled from: the digest of its pool of training records
        seen = sha256_bytes(canonical_json(self.datasets.sampled_texts))
        pools: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(pools, seen)
        facts.rank_data_digests = tuple(str(d) for d in pools)
        if len(set(pools)) != 1:
            raise IntegrityError(
                "the processes trained on different data",
                why="every DPDDP rank must sample from the same records, or the accountant's "
                "sampling rate is not the run's",
                fix="give every rank the same files (a shared path or identical copies)",
            )
        counts = torch.tensor([facts.state.tokens, facts.state.eval_tokens], dtype=torch.int64)
        dist.all_reduce(counts)
        facts.state.tokens = int(counts[0])
        facts.rank_digests = tuple(str(d) for d in digests)
        if len(set(digests)) != 1:
            raise IntegrityError(
                "the processes ended with different parameters",
                why="DPDDP must keep every rank identical; the run is not one model",
                fix="report this with the torchrun log",
            )

    def _abort(self, status: RunStatus, failure: str, mlflow_status: str) -> None:
        """Best effort: a ``completed: false`` record and a terminated MLflow run."""
        if self.facts is None or self.rank != 0:
            return
        try:
            facts = self.facts
            facts.state.wall_seconds = facts.state.wall_seconds or facts.state.elapsed()
            facts.finished = clock.now()
            facts.adapter = None
            if isinstance(self.cfg.privacy, PrivacyConfig) and facts.accounting is None:
                self._finish_accounting(facts.plan)
            self._write(status, failure, mlflow_status)
        except Exception:  # the original error matters more than this record
            pass

    def _write(
        self, status: RunStatus, failure: str | None, mlflow_status: str
    ) -> TrainingEvidence:
        from finetrail.training.evidence import build_evidence

        facts = self.facts
        facts.status, facts.failure = status, failure
        if self.tracker is not None:
            facts.mlflow = self.tracker.record()
        record = build_evidence(facts)
        event = "trained" if status == "completed" else f"training.{status}"
        self.ws.write_record(
            TRAINING_RECORD,
            record,
            event=event,
            actor=self.actor,
            extra={
                **({"planted_mechanism_bug": self.plant_bug} if self.plant_bug else {}),
                "completed": record.completed,
                "method": record.method,
                "adapter_sha256": record.adapter.sha256 if record.adapter else None,
                "epsilon": record.dp.epsilon,
                "delta": record.dp.delta,
            },
        )
        mechanism = facts.state.mechanism
        if mechanism is not None:  # DP runs: the white-box mechanism audit's judgement
            from finetrail.governance.evidence.registry import location

            self.ws.write_record(
                location("mechanism"),
                mechanism,
                event="dp.mechanism_audited",
                actor=self.actor,
                extra={"verdict": mechanism.verdict, "ran": mechanism.ran},
            )
        if self.tracker is not None:
            try:
                self.tracker.log_evidence(record.canonical_bytes())
            finally:
                self.tracker.end(mlflow_status)
        return record
