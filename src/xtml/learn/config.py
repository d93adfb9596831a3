"""Training configurations: a TOML file, checked strictly, resolved into frozen dataclasses.

A training configuration says what to learn (the task), how to split and cross-validate, which models to
train on which input (a simple one first, then complex ones), which hyperparameters to search, and which
classical reference to put in the same table.  Unknown keys are errors that list the valid ones.  See
``configs/train_detect.toml`` for a commented example.

.. code-block:: toml

    [task]
    kind = "detect"                 # detect (QPO or not) | state (multi-class) | regress
    positive = ["qpo"]              # detect: classes that count as "QPO present"
    # targets = ["qpo.nu0"]         # regress: parameters to predict

    [split]                         # grouped by simulated observation, stratified by label
    fractions = [0.7, 0.15, 0.15]   # train, validation (calibration, early stopping), test (locked)
    seed = 1

    [cv]
    n_splits = 5

    [models.logistic]               # name = one of MODEL_KINDS, or any name with kind = "..."
    input = "features"              # features (SpectralFeatures) | log_spectrum (LogSpectrum)
    params = { C = 1.0 }
    search = { C = [0.01, 0.1, 1.0, 10.0] }   # grouped CV inside the training rows
    cv = true                       # k-fold CV of the (tuned) model, mean +- std
    learning_curve = true           # headline metric against training-set size (default: as cv)

    [learning_curve]                # fractions of the training rows, scored on the validation rows
    fractions = [0.125, 0.25, 0.5, 1.0]

    [reference]                     # the classical test on the same test set
    test = "lrt"                    # lrt (detect) | fit (regress) | none
    null = { broad = "zero_lorentzian" }
    alt = { broad = "zero_lorentzian", qpo = "lorentzian" }
    max_spectra = 2000

    [evaluation]
    fpr = 0.01
    n_boot = 1000
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from xtml._files import read_toml
from xtml.data.config import _check_keys
from xtml.learn.learning_curve import DEFAULT_FRACTIONS

__all__ = [
    "INPUT_KINDS",
    "MODEL_KINDS",
    "TASK_KINDS",
    "EvaluationSpec",
    "ModelSpec",
    "ReferenceSpec",
    "TaskSpec",
    "TrainConfig",
    "load_train_config",
]

TaskKind = Literal["detect", "state", "regress"]
TASK_KINDS: tuple[str, ...] = ("detect", "state", "regress")
MODEL_KINDS: tuple[str, ...] = ("logistic", "random_forest", "hist_gb", "cnn", "linear")
INPUT_KINDS: tuple[str, ...] = ("features", "log_spectrum")
_DEFAULT_INPUT = {kind: "features" for kind in MODEL_KINDS} | {"cnn": "log_spectrum"}


def _table(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"[{where}] must be a table, got {value!r}")
    return value


def _int(table: Mapping[str, Any], key: str, default: int, minimum: int, where: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"[{where}] {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _float(table: Mapping[str, Any], key: str, default: float, lo: float, hi: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo < value < hi:
        raise ValueError(f"[{where}] {key} must be a number in ({lo}, {hi}), got {value!r}")
    return float(value)


def _names(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"[{where}] {key} must be a list of strings, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class TaskSpec:
    """What to learn.

    Attributes
    ----------
    kind : {"detect", "state", "regress"}
        ``detect``: QPO present (1) or not (0); ``state``: the simulated class (multi-class);
        ``regress``: the parameters ``targets``.
    positive : tuple of str
        ``detect``: class names counted as positive (default: the classes whose model has a
        Lorentzian component named ``qpo``, resolved against the dataset).
    targets : tuple of str
        ``regress``: parameter names of the dataset (e.g. ``"qpo.nu0"``); rows where a target is
        undefined (NaN: a class without that parameter) are left out of the task.
    log_targets : bool
        ``regress``: learn ``log10`` of the targets (frequencies, rms), reported back in linear units.
    """

    kind: TaskKind = "detect"
    positive: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    log_targets: bool = True


@dataclass(frozen=True)
class ModelSpec:
    """One model to train: an estimator kind on an input representation, with fixed and searched params."""

    name: str
    kind: str
    input: str
    params: Mapping[str, Any] = field(default_factory=dict)
    search: Mapping[str, list[Any]] = field(default_factory=dict)
    cv: bool = True
    learning_curve: bool = True  # refit on nested subsets of the training rows (xtml.learn.learning_curve)


@dataclass(frozen=True)
class ReferenceSpec:
    """The classical reference put in the same table.

    ``"lrt"`` (``detect`` tasks): the likelihood-ratio statistic of ``null`` against ``alt``;
    ``"fit"`` (``regress`` tasks): maximum-likelihood fits of ``alt`` with Hessian errors, whose
    parameters named like the targets are the predictions.
    """

    test: Literal["lrt", "fit", "none"] = "lrt"
    null: Mapping[str, str] = field(default_factory=lambda: {"broad": "zero_lorentzian"})
    alt: Mapping[str, str] = field(default_factory=lambda: {"broad": "zero_lorentzian", "qpo": "lorentzian"})
    max_spectra: int = 2000
    workers: int | None = None


@dataclass(frozen=True)
class EvaluationSpec:
    """How the locked test set is scored."""

    fpr: float = 0.01
    n_boot: int = 1000
    level: float = 0.95


@dataclass(frozen=True)
class TrainConfig:
    """A resolved, validated training configuration (module docstring)."""

    task: TaskSpec
    models: tuple[ModelSpec, ...]
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    n_splits: int = 5
    reference: ReferenceSpec = field(default_factory=ReferenceSpec)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    curve_fractions: tuple[float, ...] = DEFAULT_FRACTIONS

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrainConfig:
        """Validate a parsed TOML document."""
        _check_keys(
            raw, ("task", "split", "cv", "models", "reference", "evaluation", "learning_curve"), "top level"
        )
        t = _table(raw, "task", "task")
        _check_keys(t, ("kind", "positive", "targets", "log_targets"), "task")
        kind = t.get("kind", "detect")
        if kind not in TASK_KINDS:
            raise ValueError(f"[task] kind must be one of {', '.join(TASK_KINDS)}, got {kind!r}")
        targets = _names(t, "targets", "task")
        if kind == "regress" and not targets:
            raise ValueError("[task] kind = 'regress' needs targets = ['param.name', ...]")
        log_targets = t.get("log_targets", True)
        if not isinstance(log_targets, bool):
            raise ValueError(f"[task] log_targets must be true or false, got {log_targets!r}")
        task = TaskSpec(kind, _names(t, "positive", "task"), targets, log_targets)

        s = _table(raw, "split", "split")
        _check_keys(s, ("fractions", "seed"), "split")
        fr = s.get("fractions", [0.7, 0.15, 0.15])
        if (
            not isinstance(fr, list)
            or len(fr) != 3
            or not all(isinstance(f, int | float) and f > 0 for f in fr)
            or abs(sum(fr) - 1) > 1e-9
        ):
            raise ValueError(f"[split] fractions must be three numbers > 0 summing to 1, got {fr!r}")
        c = _table(raw, "cv", "cv")
        _check_keys(c, ("n_splits",), "cv")

        m = _table(raw, "models", "models")
        if not m:
            raise ValueError("a training configuration needs at least one [models.NAME] table")
        models = []
        for name, spec in m.items():
            where = f"models.{name}"
            if not isinstance(spec, Mapping):
                raise ValueError(f"[{where}] must be a table")
            _check_keys(spec, ("kind", "input", "params", "search", "cv", "learning_curve"), where)
            mkind = spec.get("kind", name)
            if mkind not in MODEL_KINDS:
                raise ValueError(
                    f"[{where}] kind must be one of {', '.join(MODEL_KINDS)} (or the table named so), "
                    f"got {mkind!r}"
                )
            inp = spec.get("input", _DEFAULT_INPUT[mkind])
            if inp not in INPUT_KINDS:
                raise ValueError(f"[{where}] input must be one of {', '.join(INPUT_KINDS)}, got {inp!r}")
            params, search = _table(spec, "params", where), _table(spec, "search", where)
            bad = [k for k, v in search.items() if not isinstance(v, list) or not v]
            if bad:
                raise ValueError(f"[{where}.search] values must be non-empty lists; not for {bad}")
            cv = spec.get("cv", True)
            if not isinstance(cv, bool):
                raise ValueError(f"[{where}] cv must be true or false, got {cv!r}")
            curve = spec.get("learning_curve", cv)  # a model cheap enough to cross-validate gets one
            if not isinstance(curve, bool):
                raise ValueError(f"[{where}] learning_curve must be true or false, got {curve!r}")
            models.append(
                ModelSpec(name, mkind, inp, dict(params), {k: list(v) for k, v in search.items()}, cv, curve)
            )

        r = _table(raw, "reference", "reference")
        _check_keys(r, ("test", "null", "alt", "max_spectra", "workers"), "reference")
        test = r.get("test", "lrt" if kind == "detect" else "none")
        if test not in ("lrt", "fit", "none"):
            raise ValueError(f"[reference] test must be 'lrt', 'fit' or 'none', got {test!r}")
        if test == "lrt" and kind != "detect":
            raise ValueError("[reference] test = 'lrt' applies to kind = 'detect' tasks only")
        if test == "fit" and kind != "regress":
            raise ValueError("[reference] test = 'fit' applies to kind = 'regress' tasks only")
        default_ref = ReferenceSpec()
        workers = r.get("workers")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ValueError(f"[reference] workers must be an integer >= 1, got {workers!r}")
        reference = ReferenceSpec(
            test=test,
            null=dict(_table(r, "null", "reference.null") or default_ref.null),
            alt=dict(_table(r, "alt", "reference.alt") or default_ref.alt),
            max_spectra=_int(r, "max_spectra", default_ref.max_spectra, 1, "reference"),
            workers=workers,
        )
        e = _table(raw, "evaluation", "evaluation")
        _check_keys(e, ("fpr", "n_boot", "level"), "evaluation")
        evaluation = EvaluationSpec(
            fpr=_float(e, "fpr", 0.01, 0.0, 1.0, "evaluation"),
            n_boot=_int(e, "n_boot", 1000, 10, "evaluation"),
            level=_float(e, "level", 0.95, 0.0, 1.0, "evaluation"),
        )
        lc = _table(raw, "learning_curve", "learning_curve")
        _check_keys(lc, ("fractions",), "learning_curve")
        curve = lc.get("fractions", list(DEFAULT_FRACTIONS))
        if (
            not isinstance(curve, list)
            or len(curve) < 2
            or not all(isinstance(f, int | float) and not isinstance(f, bool) and 0 < f <= 1 for f in curve)
            or curve != sorted(set(curve))
            or curve[-1] != 1
        ):
            raise ValueError(
                "[learning_curve] fractions must be at least two increasing numbers in (0, 1] ending "
                f"with 1, got {curve!r}"
            )
        return cls(
            task=task,
            models=tuple(models),
            fractions=(float(fr[0]), float(fr[1]), float(fr[2])),
            seed=_int(s, "seed", 0, 0, "split"),
            n_splits=_int(c, "n_splits", 5, 2, "cv"),
            reference=reference,
            evaluation=evaluation,
            curve_fractions=tuple(float(f) for f in curve),
        )

    def to_dict(self) -> dict[str, Any]:
        """The canonical configuration (every default filled in), as TOML-ready data."""
        t, r, e = self.task, self.reference, self.evaluation
        ref: dict[str, Any] = {"test": r.test, "null": dict(r.null), "alt": dict(r.alt)}
        ref["max_spectra"] = r.max_spectra
        if r.workers is not None:
            ref["workers"] = r.workers
        return {
            "task": {
                "kind": t.kind,
                "positive": list(t.positive),
                "targets": list(t.targets),
                "log_targets": t.log_targets,
            },
            "split": {"fractions": list(self.fractions), "seed": self.seed},
            "cv": {"n_splits": self.n_splits},
            "models": {
                m.name: {
                    "kind": m.kind,
                    "input": m.input,
                    "params": dict(m.params),
                    "search": dict(m.search),
                    "cv": m.cv,
                    "learning_curve": m.learning_curve,
                }
                for m in self.models
            },
            "reference": ref,
            "evaluation": {"fpr": e.fpr, "n_boot": e.n_boot, "level": e.level},
            "learning_curve": {"fractions": list(self.curve_fractions)},
        }


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and validate a training TOML file; errors name the file and the key."""
    p = Path(path)
    raw = read_toml(p, "training configuration")
    try:
        return TrainConfig.from_dict(raw)
    except ValueError as err:
        raise ValueError(f"{p}: {err}") from None
