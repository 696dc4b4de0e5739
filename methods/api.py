"""The Method contract: the spine of the harness.

A method is an `nn.Module` subclass registered under a name. The engine owns the loop, optimiser,
schedule, device, precision, checkpoints, logging and evaluation; the method owns its networks and
losses. Because a method is an `nn.Module`, its networks, EMA teachers and memory banks (registered
as buffers) are all in `state_dict()`, so checkpoints need nothing method-specific; Python-side
state that is not a tensor (e.g. an alternation state machine) goes through
`get_extra_state`/`set_extra_state`, which `nn.Module` already supports.

    @register_method("spcl")
    class SPCL(MeanTeacher):
        Config = SPCLConfig                      # dataclass with the paper's defaults
        display_name = "SPCL"                     # the name tables, figures and reports show
        def training_step(self, batch, it) -> StepOutput: ...
        def on_step_end(self, it): ...            # EMA, memory banks, schedules
        def predictor(self) -> nn.Module: ...     # the network that is evaluated
        def embed(self, x) -> Tensor: ...         # projection features for t-SNE

Optional hooks with defaults: `selection_candidates()` (the networks `train.selection:
best_on_test` may pick from; default: the evaluated one), `augment_overrides()` (fields of the common augmentation the method
sets itself), `configure_optimizer(params, train_cfg)` (see `optimised_parameters`).

Discovery: the built-in packages `spcl` and `baselines` are imported, plus any module advertised
under the `spcl_bench.methods` entry-point group, so a third-party method needs no change here.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from methods.errors import ConfigError

ENTRY_POINT_GROUP = "spcl_bench.methods"
BUILTIN_METHOD_PACKAGES = ("methods.meanteacher", "baselines", "spcl")


@dataclass
class Batch:
    """One training step's input, already through the common augmentation, on the device.

    x_l: labelled images [B_l, 1, H, W] float; y_l: their labels [B_l, H, W] int64 (0 = background);
    x_u: unlabelled images [B_u, 1, H, W] float (B_u may be 0 for supervised-only runs).
    """

    x_l: Tensor
    y_l: Tensor
    x_u: Tensor

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in (self.x_l, self.y_l, self.x_u)))


@dataclass
class StepOutput:
    """What `training_step` returns: the loss to back-propagate and named scalars to log.

    `logs` values may be 0-d tensors (they are detached and synchronised once per logging
    interval by the engine, never inside the method) or Python floats. The engine's NaN/inf
    guard checks `loss` and every entry of `logs` and names the offending key.
    """

    loss: Tensor
    logs: dict[str, Tensor | float] = field(default_factory=dict)


class Method(nn.Module):
    """Base class of every method. Subclasses set `Config`, `description` and `display_name`.

    Constructor arguments (always passed by the engine as keywords):
      cfg:         an instance of `Config` (built with `build_config`, unknown keys rejected)
      net_factory: `NetFactory`; `net_factory()` builds a fresh segmentation network that returns
                   `NetOutput(logits, features, projection)`; `net_factory.profile` exposes the
                   network profile for methods that build extra heads.
      num_classes: number of classes including background.
      max_iters:   the run's total number of training iterations (for ramps and schedules).
      data_info:   facts about the training data a schedule may need: `labelled_slices`,
                   `unlabelled_slices`, `labelled_batch`, `unlabelled_batch`, `img_size`.
    """

    Config: ClassVar[type] = None  # type: ignore[assignment]
    #: the short description: one line on what this implementation trains (losses, weights, how it
    #: reads its paper), shown by `python -m methods list`; the module docstring holds the long one
    description: ClassVar[str] = ""
    #: the registry name: the key of run configs, results CSVs and folders (set by @register_method)
    name: ClassVar[str] = ""
    #: the name tables, figures and reports show ("AD-MT", "Mean teacher"): one line, unique among
    #: the registered methods. A class that does not set it shows its registry name (set by
    #: @register_method; it is never inherited, so a subclass of SPCL is not labelled "SPCL").
    display_name: ClassVar[str] = ""
    #: which network `predictor()` returns, recorded in the results CSV ("student", "teacher", ...)
    evaluated_network: ClassVar[str] = "student"
    #: False for methods that never look at unlabelled images (SupOnly): the engine then skips
    #: loading them and passes an empty `x_u`
    uses_unlabelled: ClassVar[bool] = True
    #: named presets: variant name -> config overrides (e.g. the ablations of Tables 3 and 4).
    #: "default" (no overrides) always exists; see `resolve_variant`.
    variants: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(
        self,
        cfg: Any,
        net_factory: Callable[..., nn.Module],
        num_classes: int,
        max_iters: int,
        data_info: dict[str, int] | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.net_factory = net_factory
        self.num_classes = int(num_classes)
        self.max_iters = int(max_iters)
        self.data_info = dict(data_info or {})

    # --- the contract -------------------------------------------------------------------------
    def training_step(self, batch: Batch, it: int) -> StepOutput:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement training_step")

    def on_step_end(self, it: int) -> None:
        """Called after the optimiser step: EMA updates, memory banks, schedules."""

    def predictor(self) -> nn.Module:  # pragma: no cover - abstract
        """The network evaluated on the test set; its forward returns a NetOutput."""
        raise NotImplementedError(f"{type(self).__name__} must implement predictor")

    #: whether `embed` returns the projection head's output (methods that train it with a
    #: contrastive loss) or the decoder features (methods that never train the projection head)
    embeds_projection: ClassVar[bool] = True

    @torch.no_grad()
    def embed(self, x: Tensor) -> Tensor:
        """Features [B, D, h, w] of the evaluated network for the t-SNE figures: the projection
        when the method trains it, else the decoder features (an untrained head is noise)."""
        out = self.predictor()(x)
        return out.projection if self.embeds_projection else out.features

    def selection_candidates(self) -> dict[str, nn.Module]:
        """Networks, by name, that `train.selection: best_on_test` scores (methods/training/selection.py).
        Default: the evaluated network only. A candidate's weights must fit `predictor()`."""
        return {str(self.evaluated_network): self.predictor()}

    def augment_overrides(self) -> dict[str, Any]:
        """Fields of the common augmentation (`methods.augment.AugmentConfig`: `rotate_deg`, `hflip`,
        `vflip`, `jitter`, `brightness`, `contrast`) that this method sets itself, because its
        official pipeline differs there; the engine applies them over the run's `augment` section
        for this method only. Example: UGPCL rotates inside its step, so it turns the common
        rotation off (`{"rotate_deg": 0.0}`). Default: none. Unknown keys are a ConfigError."""
        return {}

    def optimised_parameters(self) -> list[nn.Parameter]:
        """Parameters the engine's optimiser updates (default: all that require grad).

        A method whose paper uses another optimiser may also define
        `configure_optimizer(params, train_cfg) -> Optimizer | (Optimizer, LRScheduler)`;
        without it the engine uses SGD with poly decay from the run's `train` settings."""
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> "Method":
        """Methods that keep EMA teachers override this to control the teachers' mode."""
        return super().train(mode)

    def pseudo_label_view(self) -> "PseudoLabelView | None":
        """The pseudo-labels of the last `training_step` on the unlabelled images `batch.x_u`, in
        batch order and on their grid (before any method-side mixing), and which pixels passed the
        method's reliability filter; None when the method did not threshold pseudo-labels in that
        step (warm-up, supervised methods). Read by the engine for its coverage/precision logs
        only (methods.training.pseudo_label_logs)."""
        return None


@dataclass
class PseudoLabelView:
    """labels [B_u, H, W] int64 (class index); passed [B_u, H, W] bool (used by the loss).

    `warp`, for a method that pseudo-labels a transformed copy of `batch.x_u` (UGPCL's rotations):
    maps the engine's diagnostic labels of `x_u` onto the pseudo-labels' grid, the same transform
    the method applied to the images (None: the pseudo-labels are on x_u's grid)."""

    labels: Tensor
    passed: Tensor
    warp: Callable[[Tensor], Tensor] | None = None


# --- registry -----------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Method]] = {}
_DISCOVERED = False


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator registering a Method subclass under `name` (lower-case, unique)."""

    def deco(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"@register_method({name!r}) must decorate a Method subclass, got {cls!r}")
        if cls.Config is None or not dataclasses.is_dataclass(cls.Config):
            raise TypeError(f"method {name!r}: {cls.__name__}.Config must be a dataclass")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"method name {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        label = cls.__dict__.get("display_name", name)
        if not isinstance(label, str) or not label.strip() or label != label.strip() or "\n" in label:
            raise ValueError(f"method {name!r}: {cls.__name__}.display_name must be one non-empty line "
                             f"without surrounding spaces, got {label!r}")
        for other_name, other in _REGISTRY.items():
            if other_name != name and other.display_name == label:  # tables could not tell them apart
                raise ValueError(f"method {name!r}: display name {label!r} is already shown for method "
                                 f"{other_name!r} ({other.__module__}.{other.__qualname__})")
        cls.name = name
        cls.display_name = label
        _REGISTRY[name] = cls
        return cls

    return deco


def _import_package_tree(package: str) -> None:
    mod = importlib.import_module(package)
    if hasattr(mod, "__path__"):
        for info in pkgutil.iter_modules(mod.__path__, prefix=package + "."):
            if not info.name.rsplit(".", 1)[-1].startswith("_"):
                importlib.import_module(info.name)


def discover_methods() -> None:
    """Import the built-in method packages and every `spcl_bench.methods` entry point once."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for package in BUILTIN_METHOD_PACKAGES:
        _import_package_tree(package)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def list_methods() -> dict[str, type[Method]]:
    discover_methods()
    return dict(sorted(_REGISTRY.items()))


def get_method(name: str) -> type[Method]:
    methods = list_methods()
    if name not in methods:
        raise ConfigError(
            f"unknown method {name!r}; registered methods: {', '.join(methods) or '(none)'}. "
            f"A new method is a module in baselines/ (or a '{ENTRY_POINT_GROUP}' entry point) "
            "with a class decorated by @register_method."
        )
    return methods[name]


def resolve_variant(
    method_cls: type[Method],
    variant: str | None,
    overrides: dict[str, Any] | None = None,
    base: str | None = None,
) -> Any:
    """Build the config of `method_cls` for a variant plus explicit overrides (which win).

    `variant` names a preset of `method_cls.variants` ("default" always exists). A run may also
    define its own variant, e.g. a point of the Fig. 5 threshold sweep: then `variant` is only
    the label recorded with the results, `base` names the preset it starts from, and
    `overrides` hold the changes (`variant: sweep_gs0.65_gt0.90, base: default,
    overrides: {gamma_s: 0.65, gamma_t: 0.9}`).
    """
    preset = base if base is not None else (variant or "default")
    if preset != "default" and preset not in method_cls.variants:
        raise ConfigError(
            f"method {method_cls.name!r} has no variant {preset!r}; "
            f"variants: {['default', *sorted(method_cls.variants)]}"
        )
    merged = {**method_cls.variants.get(preset, {}), **(overrides or {})}
    label = variant or preset
    return build_config(method_cls.Config, merged, where=f"method {method_cls.name!r} (variant {label!r})")


def build_config(config_cls: type, overrides: dict[str, Any] | None, where: str = "method config") -> Any:
    """Instantiate a config dataclass from `overrides`; unknown keys are an error, not ignored.

    Values are checked against the field's default type where that is unambiguous (a string
    where a number is expected is an error), and tuples given as YAML lists are converted.
    """
    overrides = dict(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for {config_cls.__name__}; valid keys: {sorted(fields)}"
        )
    defaults = config_cls()
    for key, value in list(overrides.items()):
        default = getattr(defaults, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {key} must be true/false, got {value!r}")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
            if isinstance(default, float):
                overrides[key] = float(value)
            elif isinstance(value, float):  # `6e3` is a float in YAML; a count must be whole
                if not value.is_integer():
                    raise ConfigError(f"{where}: {key} must be a whole number, got {value!r}")
                overrides[key] = int(value)
        elif isinstance(default, tuple) and isinstance(value, list):
            overrides[key] = tuple(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
    cfg = config_cls(**overrides)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return cfg


def check_choice(name: str, value: Any, choices: tuple) -> None:
    """Helper for Config.validate(): a clear error for an option outside its allowed values."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")
