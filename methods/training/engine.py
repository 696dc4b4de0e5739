"""The iteration-based training engine: one `Trainer` per run folder.

The engine owns everything but the method's losses: data streams, the common augmentation,
optimiser and schedule, device and precision, logging, the NaN guard and checkpoints.

- Optimiser: SGD (lr 0.01, momentum 0.9, weight decay 1e-4 on every parameter, as SPCL's code)
  with poly decay lr_t = lr (1 - t / T)^0.9 over the run's T iterations (stepped per iteration;
  methods/optim.py, which a method's own hook can reuse with another horizon).
  Optional method hook, duck-typed so a method needs nothing but the method itself:
      def configure_optimizer(self, params, train_cfg) -> Optimizer | tuple[Optimizer, LRScheduler]
  `params` are `method.optimised_parameters()`, `train_cfg` is the run's `TrainConfig`; when the
  hook returns only an optimiser, the engine attaches the poly schedule to it.
- Unlabelled data: a method class with `uses_unlabelled = False` gets an empty `x_u` and the
  unlabelled slices are never loaded.
- Numerics (methods/precision.py): `train.amp` and `train.channels_last` resolve, on the machine
  that trains, to a precision (bf16 autocast where the hardware has native bf16, else fp32) and a
  memory format (channels-last on the CPU). The resolved pair is stored beside the config in every
  checkpoint (`numerics`) and compared like the config: a run is never resumed, or its final.pt
  accepted, on a machine that resolves the same settings to another path. Evaluation uses the
  pair recorded in final.pt.
- Augmentation: the run's `augment` section, with the fields the method sets itself
  (`Method.augment_overrides()`, e.g. UGPCL turns the common rotation off because it rotates in
  its own step) applied for that method; the applied settings are in the checkpoint's `meta`.
- Determinism: the seed drives python/numpy/torch, weight initialisation, both data streams and
  the augmentation generator. On the CPU a run is bit-for-bit repeatable with the same thread
  count, in fp32 and in bf16 autocast, and killing it at any point and restarting the same command
  resumes from `checkpoints/last.pt` to bit-identical weights (oneDNN's reductions are ordered by
  the thread count, so another count gives other rounding). On CUDA cuDNN is put in deterministic mode; a few kernels (the backward of bilinear
  upsampling) have no deterministic implementation, so CUDA runs agree to rounding only.
- Completion: `final.pt` is written, then `checkpoints/last.pt` is deleted (it would double the
  disk use of every run); running a completed run again checks the config and does nothing.
- One copy at a time: `train()` holds `RUN/train.lock` (methods/cluster/runlock.py), so a second copy of
  a run (a restarted workflow head resubmitting a job that still runs) waits instead of training
  beside the first; every file is written through a temporary name of its own (methods/atomic.py).
- Pseudo-label diagnostics (`train.pseudo_label_logs`, methods/training/pseudo_label_logs.py): per-class
  coverage, and precision where the cache has labels for the unlabelled patients, accumulated
  between logs; those labels travel beside the batch and never into it.
- Logs: every named value of every iteration, kept on the device and synchronised to the host
  once per `log_every` iterations (and before each checkpoint): `log.csv`, the progress bar and
  TensorBoard (when installed). The NaN/inf guard runs at that synchronisation and names the
  first offending key and iteration; a checkpoint is never written from non-finite values.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from methods.api import Batch, ConfigError, Method, get_method, resolve_variant
from methods.atomic import atomic_path
from methods.augment import CommonAugment, with_overrides
from methods.training.checkpoint import (
    FORMAT_VERSION,
    check_compatible,
    load_method_state,
    read_checkpoint,
    save_atomic,
)
from methods.data.loaders import TrainingData, open_run_inputs
from methods.training.selection import BestOnTestSelector, selection_points
from methods.nets import NetFactory
from methods.optim import poly_schedule, sgd_poly
from methods.precision import Numerics, resolve_numerics
from methods.training.provenance import append_session, machine_record, now_utc
from methods.training.pseudo_label_logs import PseudoLabelMeter
from methods.runconfig import RunConfig, TrainConfig, write_yaml_atomic
from methods.cluster.runlock import run_lock
from methods.training.warm_start import warm_start

log = logging.getLogger(__name__)

_AUG_SALT = 0xA06


class NonFiniteLossError(FloatingPointError):
    """A logged loss became NaN or inf; the message names the key and the iteration, `reason` says
    the same in a few words (what a recorded failure keeps)."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def build_optimizer(method: Method, train: TrainConfig):
    """The method's `configure_optimizer` hook if it has one, else SGD + poly (methods/optim.py)."""
    params = method.optimised_parameters()
    hook = getattr(method, "configure_optimizer", None)
    if not callable(hook):
        return sgd_poly(params, train)
    made = hook(params, train)
    optimizer, scheduler = made if isinstance(made, tuple) else (made, None)
    if scheduler is None:
        scheduler = poly_schedule(optimizer, train.iterations, train.poly_power)
    return optimizer, scheduler


def train_step(method: Method, optimizer, scheduler, augment: CommonAugment, batch: Batch, it: int,
               device: torch.device, numerics: Numerics,
               diagnostic_labels: Tensor | None = None) -> tuple[dict[str, Any], Tensor | None]:
    """One iteration: to device, common augmentation, images into the run's memory format, forward
    under its autocast, backward, optimiser and schedule step, `on_step_end`. Returns the step's
    logs (device tensors, not synchronised) and `diagnostic_labels` (labels of the unlabelled
    images, for logging only) warped with the unlabelled images' augmentation; they are never
    given to the method."""
    batch = batch.to(device)
    x_l, y_l = augment(batch.x_l, batch.y_l)
    y_u = diagnostic_labels.to(device).long() if diagnostic_labels is not None else None
    x_u, y_u = augment(batch.x_u, y_u)
    batch = Batch(numerics.format_input(x_l), y_l, numerics.format_input(x_u))
    method.train()
    with numerics.autocast(device):
        out = method.training_step(batch, it)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    optimizer.step()
    scheduler.step()
    method.on_step_end(it)
    return {"loss": out.loss.detach(), **out.logs}, y_u


# --- logging -------------------------------------------------------------------------------------
class CsvLog:
    """`log.csv`: one row per iteration (`iteration`, `lr`, then every named value, in order of
    first appearance). A key that appears later (e.g. after a warm-up) rewrites the header once;
    a resumed run first drops rows at or after the resumed iteration."""

    def __init__(self, path: Path, resume_from: int):
        self.path = path
        self.columns: list[str] = ["iteration", "lr"]
        self.rows: list[dict[str, str]] = []
        if path.exists() and resume_from > 0:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or self.columns)
                self.rows = [r for r in reader if int(r["iteration"]) < resume_from]
        self._rewrite()

    def _rewrite(self) -> None:
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, self.columns, restval="")
            w.writeheader()
            w.writerows(self.rows)

    def append(self, rows: list[dict[str, float]]) -> None:
        new = [k for r in rows for k in r if k not in self.columns]
        text_rows = [{k: (str(v) if k == "iteration" else "" if v != v else f"{v:.6g}") for k, v in r.items()} for r in rows]
        self.rows += text_rows
        if new:
            self.columns += list(dict.fromkeys(new))
            self._rewrite()
            return
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.columns, restval="").writerows(text_rows)


def _tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


# --- the trainer ----------------------------------------------------------------------------------
class Trainer:
    """Build everything for one run (`__init__`), then `run()`; resumes from `last.pt` if present."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.run_dir = Path(cfg.out_dir)
        self.ckpt_path = self.run_dir / "checkpoints" / "last.pt"
        self.device = pick_device(cfg.train.device)
        self.numerics = resolve_numerics(self.device, cfg.train.amp, cfg.train.channels_last)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = False  # autotuning picks kernels non-deterministically
            torch.backends.cudnn.deterministic = True
        self.method_cls = get_method(cfg.method)
        method_cfg = resolve_variant(self.method_cls, cfg.variant, cfg.method_config, base=cfg.variant_base)

        inputs = open_run_inputs(cfg.data)
        cache, split = inputs.cache, inputs.split
        self.class_names = list(cache.class_names)
        self.num_classes = cache.num_classes
        seed_everything(cfg.seed)
        self.region = inputs.region
        self.region.check_cache(cache)
        self.data = TrainingData(
            cache, split, self.region, cfg.data.labelled_batch, cfg.data.unlabelled_batch, cfg.seed,
            use_unlabelled=getattr(self.method_cls, "uses_unlabelled", True), split_path=cfg.data.split,
            diagnostic_labels=cfg.train.pseudo_label_logs,
        )
        if getattr(self.method_cls, "uses_unlabelled", True) and not self.data.use_unlabelled:
            raise ConfigError(f"method {cfg.method!r} trains on unlabelled data, but data.unlabelled_batch is 0")
        factory = NetFactory(cfg.network, self.num_classes)
        self.method: Method = self.method_cls(
            cfg=method_cfg, net_factory=factory, num_classes=self.num_classes,
            max_iters=cfg.train.iterations, data_info=self.data.info,
        ).to(self.device)
        self.numerics.format_module(self.method)
        self.optimizer, self.scheduler = build_optimizer(self.method, cfg.train)
        self.aug_gen = torch.Generator().manual_seed(cfg.seed * 7919 + _AUG_SALT)
        # the run's common augmentation, with the fields the method sets itself (e.g. UGPCL's rotation)
        self.augment_cfg = with_overrides(cfg.augment, self.method.augment_overrides(), f"method {cfg.method!r}")
        self.augment = CommonAugment(self.augment_cfg, self.aug_gen)
        # the run's identity as the engine checks it: the config and the numeric path it resolved to
        self.config_dict = {**cfg.to_dict(), "numerics": self.numerics.as_dict()}
        self.iteration = 0  # completed iterations
        self.init_record: dict | None = None  # what train.init_from set (methods/training/warm_start.py)
        self.pl_meter = (PseudoLabelMeter(self.class_names, self.data.has_diagnostic_labels)
                         if cfg.train.pseudo_label_logs else None)
        self._pending: list[tuple[int, float, dict[str, Any]]] = []
        self._latest: dict[str, float] = {}
        self.selector = (
            BestOnTestSelector(cache, split, self.region, cfg.evaluation, self.num_classes, self.device,
                               cfg.data.split, numerics=self.numerics)
            if cfg.train.selection == "best_on_test" else None
        )
        self.select_at = set(selection_points(cfg.train.iterations, cfg.train.select_every)) if self.selector else set()

    # ---- state ------------------------------------------------------------------------------------
    @property
    def meta(self) -> dict:
        return {
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "dataset": self.cfg.data.dataset,
            "data_info": self.data.info,
            "evaluated_network": str(self.method.evaluated_network),
            "augment": dataclasses.asdict(self.augment_cfg),  # as applied, after the method's overrides
            "init_from": self.init_record,
        }

    def _rng_state(self) -> dict:
        np_state = np.random.get_state()
        return {
            "python": random.getstate(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "augment": self.aug_gen.get_state(),
        }

    def _set_rng_state(self, s: dict) -> None:
        random.setstate(_as_tuples(s["python"]))
        np.random.set_state((s["numpy"][0], s["numpy"][1].numpy().astype(np.uint32), *s["numpy"][2:]))
        torch.set_rng_state(s["torch"])
        if self.device.type == "cuda" and s["cuda"]:
            torch.cuda.set_rng_state_all(s["cuda"])
        self.aug_gen.set_state(s["augment"])

    def save_checkpoint(self) -> None:
        save_atomic(
            {
                "format_version": FORMAT_VERSION, "kind": "resume", "config": self.config_dict,
                "iteration": self.iteration, "method_state": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "data": self.data.state_dict(), "rng": self._rng_state(), "meta": self.meta,
                "selection": self.selector.state_dict() if self.selector is not None else None,
            },
            self.ckpt_path,
        )

    def try_resume(self) -> bool:
        """Restore everything from `last.pt` if it exists; refuse one from another configuration."""
        if not self.ckpt_path.exists():
            return False
        # on the CPU: RNG states must stay CPU tensors; load_state_dict moves weights and the
        # optimiser state to the parameters' device
        ckpt = read_checkpoint(self.ckpt_path, map_location="cpu")
        check_compatible(ckpt, self.config_dict, self.ckpt_path)
        load_method_state(self.method, ckpt["method_state"], self.ckpt_path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.data.load_state_dict(ckpt["data"])
        self._set_rng_state(ckpt["rng"])
        if self.selector is not None:
            self.selector.load_state_dict(ckpt.get("selection"))
        self.iteration = int(ckpt["iteration"])
        self.init_record = (ckpt.get("meta") or {}).get("init_from")
        return True

    # ---- one step ---------------------------------------------------------------------------------
    def step(self, it: int) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        batch, y_u = self.data.next_batch_with_diagnostics()
        logs, y_u = train_step(self.method, self.optimizer, self.scheduler, self.augment, batch, it,
                               self.device, self.numerics, diagnostic_labels=y_u)
        if self.pl_meter is not None:
            view = self.method.pseudo_label_view()
            if view is not None:
                self.pl_meter.add(view, y_u)
        self._pending.append((it, lr, logs))

    def flush_logs(self, csv_log: CsvLog, writer) -> None:
        """One host synchronisation for all pending iterations; NaN/inf guard; CSV/TensorBoard."""
        if not self._pending:
            return
        tensors = [v.detach().float().reshape(()).to(self.device)
                   for _, _, logs in self._pending for v in logs.values() if isinstance(v, Tensor)]
        host = iter(torch.stack(tensors).cpu().tolist()) if tensors else iter(())
        rows = []
        for it, lr, logs in self._pending:
            values = {k: (next(host) if isinstance(v, Tensor) else float(v)) for k, v in logs.items()}
            bad = [k for k, v in values.items() if not np.isfinite(v)]
            if bad:
                self._pending.clear()
                reason = f"loss {bad[0]!r} is {values[bad[0]]} at iteration {it} (non-finite keys: {bad})"
                raise NonFiniteLossError(
                    f"{self.cfg.method}: {reason}; run {self.run_dir}. Stopped; the last checkpoint precedes it.",
                    reason)
            rows.append({"iteration": it, "lr": lr, **values})
        self._pending.clear()
        if self.pl_meter is not None:  # diagnostics may be NaN (nothing to count): not guarded
            rows[-1].update(self.pl_meter.flush())
        csv_log.append(rows)
        self._latest = {k: v for k, v in rows[-1].items() if k not in ("iteration", "lr") and not k.startswith("pl_")}
        if writer is not None:
            for row in rows:
                for k, v in row.items():
                    if k != "iteration":
                        writer.add_scalar(k, v, row["iteration"])

    # ---- the loop ---------------------------------------------------------------------------------
    def run(self) -> Path:
        """Train to `train.iterations` (resuming if possible); write final.pt; return the run folder."""
        from tqdm.auto import tqdm

        tc = self.cfg.train
        if self.is_complete():
            log.info("%s is already complete (final.pt at iteration %d); nothing to do", self.run_dir, tc.iterations)
            return self.run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resumed = self.try_resume()  # first: a refused checkpoint leaves the folder untouched
        if resumed:
            log.info("resumed from %s at iteration %d", self.ckpt_path, self.iteration)
        elif tc.init_from:
            self.init_record = warm_start(self.method, tc.init_from, self.config_dict)
            log.info("warm start from %s (%s, iteration %d): %s", tc.init_from, self.init_record["method"],
                     self.init_record["iteration"], ", ".join(self.init_record["networks"]))
        write_yaml_atomic(self.run_dir / "config.yaml", self.config_dict)
        csv_log = CsvLog(self.run_dir / "log.csv", resume_from=self.iteration if resumed else 0)
        writer = _tensorboard_writer(self.run_dir)
        bar = tqdm(total=tc.iterations, initial=self.iteration, disable=not tc.progress,
                   desc=f"{self.cfg.method}/{self.cfg.variant}", dynamic_ncols=True)
        first_iteration, started, t0 = self.iteration, now_utc(), time.perf_counter()
        try:
            self._loop(csv_log, writer, bar)
        except NonFiniteLossError as exc:
            if tc.on_failure != "record":
                raise
            self.record_failure(exc.reason)
            self._finish_session(first_iteration, started, t0, failure=exc.reason)
            return self.run_dir
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        self.write_outputs()
        self._finish_session(first_iteration, started, t0)
        return self.run_dir

    def _loop(self, csv_log: CsvLog, writer, bar) -> None:
        tc = self.cfg.train
        while self.iteration < tc.iterations:
            self.step(self.iteration)
            self.iteration += 1
            bar.update(1)
            last = self.iteration == tc.iterations
            if self.iteration % tc.log_every == 0 or self.iteration % tc.checkpoint_every == 0 or last:
                self.flush_logs(csv_log, writer)
                bar.set_postfix({k: f"{v:.4g}" for k, v in self._latest.items()}, refresh=False)
            if self.iteration in self.select_at:
                for r in self.selector.consider(self.iteration, self.method):
                    log.info("selection: %s at iteration %d, test Dice %.4f", r["network"], r["iteration"], r["dice"])
            if self.iteration % tc.checkpoint_every == 0 and not last:  # the end writes final.pt
                self.save_checkpoint()

    def _finish_session(self, first_iteration: int, started: str, t0: float, failure: str | None = None) -> None:
        seconds = round(time.perf_counter() - t0, 3)  # the per-iteration figure derives from this value
        trained = self.iteration - first_iteration
        append_session(self.run_dir, {
            **machine_record(self.device),
            "precision": self.numerics.precision, "memory_format": self.numerics.memory_format,
            "started": started, "finished": now_utc(),
            "from_iteration": first_iteration, "to_iteration": self.iteration,
            "seconds": seconds,
            "seconds_per_iteration": round(seconds / trained, 6) if trained else None,
            **({"failure": failure} if failure else {}),
        })
        self.ckpt_path.unlink(missing_ok=True)  # final.pt now holds the outcome; the resume state is not needed
        try:
            self.ckpt_path.parent.rmdir()
        except OSError:  # not empty or already gone
            pass

    def record_failure(self, reason: str) -> None:
        """`train.on_failure: record`: final.pt of kind "failed" holds the reason and no weights, so
        the workflow goes on (its evaluation writes a failure record that the report lists); the
        resume state goes (`_finish_session`), since the same configuration would fail again."""
        log.error("run failed, recorded in final.pt: %s", reason)
        save_atomic({"format_version": FORMAT_VERSION, "kind": "failed", "config": self.config_dict,
                     "iteration": self.iteration, "reason": reason, "meta": self.meta},
                    self.run_dir / "final.pt")

    def is_complete(self) -> bool:
        """final.pt of this very configuration at the last iteration, and no resume state pending."""
        final = self.run_dir / "final.pt"
        if not final.exists() or self.ckpt_path.exists():
            return False
        ckpt = read_checkpoint(final)
        check_compatible(ckpt, self.config_dict, final)
        if ckpt.get("kind") == "failed":  # deterministic: the same configuration would fail again
            log.warning("%s is recorded as failed: %s (delete it to train again)", final, ckpt.get("reason"))
            return True
        return int(ckpt["iteration"]) == self.cfg.train.iterations

    def write_outputs(self) -> None:
        record = self.selector.apply(self.method) if self.selector is not None else "last"
        save_atomic(
            {"format_version": FORMAT_VERSION, "kind": "final", "config": self.config_dict,
             "iteration": self.iteration, "method_state": self.method.state_dict(),
             "meta": {**self.meta, "selection": record}},
            self.run_dir / "final.pt",
        )
        samples = getattr(self.method, "similarity_samples", None)
        arrays = samples() if callable(samples) else None
        path = self.run_dir / "similarities.npz"
        if arrays:
            with atomic_path(path) as tmp, tmp.open("wb") as f:  # a file object: savez adds no ".npz"
                np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
        else:
            path.unlink(missing_ok=True)  # never leave a file from an earlier configuration


def _as_tuples(x):
    """random.setstate needs tuples where a checkpoint round trip may give lists."""
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def train(cfg: RunConfig, if_running: str = "wait", poll_s: float = 30.0) -> Path:
    """Run (or resume, or finish) the training described by `cfg`; return its run folder.

    Holds the run folder's lock (methods/cluster/runlock.py) throughout: while another copy of this run
    trains, this one waits (`if_running="wait"`; when that copy is done, the run is complete and
    nothing is left to do) or stops with `LiveCopyError` (`"fail"`)."""
    with run_lock(cfg.out_dir, if_running=if_running, poll_s=poll_s):
        return Trainer(cfg).run()
