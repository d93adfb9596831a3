"""SBI scenario configurations: a simulator, the parameters to infer, the inputs, the network, the checks.

An SBI configuration is a simulation configuration (the tables of :mod:`xtml.data.config`:
``[observation]``, ``[rate]``, ``[classes.*]``, ``[detector]``, ``[dataset]``) plus three tables of its own,
so the file says everything needed to re-create the posterior:

.. code-block:: toml

    [sbi]
    n_train = 100000            # simulations for training (10% of them validate early stopping)
    n_test = 1000               # held-out simulations for the calibration checks
    n_calibration = 1000        # other held-out simulations that recalibrate the posterior (0: none;
                                # default: n_test)
    class = "qpo"               # the class whose parameters are inferred (default: the only class)
    parameters = ["qpo.nu0", "qpo.q", "qpo.rms", "broad.nu_max", "broad.rms", "rate"]
    channels = ["power", "cospectrum"]   # spectra on the frequency grid fed to the embedding
    scalars = ["log_mean_rate"]          # per-observation numbers fed next to them
    # train_data = "data/train.zarr"     # optional: an existing dataset instead of simulating
    # test_data = "data/test.zarr"
    # calibration_data = "data/cal.zarr"

    [npe]                       # keys of xtml.sbi.density.NPEConfig
    flow = "nsf"
    embedding = "cnn"
    n_ensemble = 2

    [validation]
    n_samples = 1000            # posterior draws per test observation
    coverage_tolerance = 0.02   # +-2 percentage points at 50, 68 and 95 %
    sbc_alpha = 0.01

Unknown keys are errors that list the valid ones; errors name the file.  The test simulations use the
dataset seed plus :data:`TEST_SEED_OFFSET`, the calibration simulations the seed plus
:data:`CALIBRATION_SEED_OFFSET`, so no set repeats a simulation of another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtml._files import read_toml
from xtml.data.config import SimulationConfig, _check_keys
from xtml.psd import Fixed
from xtml.sbi.inputs import CHANNELS, SCALARS

__all__ = [
    "CALIBRATION_SEED_OFFSET",
    "TEST_SEED_OFFSET",
    "SBIConfig",
    "SBISpec",
    "ValidationSpec",
    "load_sbi_config",
]

TEST_SEED_OFFSET = 1_000_003
CALIBRATION_SEED_OFFSET = 2_000_029
_SBI_KEYS = (
    "n_train",
    "n_test",
    "n_calibration",
    "class",
    "parameters",
    "channels",
    "scalars",
    "train_data",
    "test_data",
    "calibration_data",
)
_VALIDATION_KEYS = ("n_samples", "coverage_tolerance", "sbc_alpha", "seed")


@dataclass(frozen=True)
class SBISpec:
    """The ``[sbi]`` table: what is simulated, inferred and fed to the network."""

    n_train: int
    n_test: int
    class_name: str
    parameters: tuple[str, ...]
    channels: tuple[str, ...] = ("power",)
    scalars: tuple[str, ...] = ("log_mean_rate",)
    train_data: str | None = None
    test_data: str | None = None
    n_calibration: int = 0
    calibration_data: str | None = None


@dataclass(frozen=True)
class ValidationSpec:
    """The ``[validation]`` table: thresholds of :func:`xtml.sbi.diagnostics.check_calibration`."""

    n_samples: int = 1000
    coverage_tolerance: float = 0.02
    sbc_alpha: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class SBIConfig:
    """A resolved SBI scenario: simulation, inference target, network and checks."""

    simulation: SimulationConfig
    sbi: SBISpec
    npe: dict[str, Any] = field(default_factory=dict)
    validation: ValidationSpec = field(default_factory=ValidationSpec)
    source: str | None = None

    def npe_config(self) -> Any:
        """The :class:`~xtml.sbi.density.NPEConfig` (imports PyTorch)."""
        from xtml.sbi.density import NPEConfig

        return NPEConfig.from_dict(self.npe)

    def to_dict(self) -> dict[str, Any]:
        """TOML-ready canonical form (every default filled in)."""
        s = self.sbi
        sbi: dict[str, Any] = {
            "n_train": s.n_train,
            "n_test": s.n_test,
            "n_calibration": s.n_calibration,
            "class": s.class_name,
            "parameters": list(s.parameters),
            "channels": list(s.channels),
            "scalars": list(s.scalars),
        }
        for key in ("train_data", "test_data", "calibration_data"):
            if getattr(s, key) is not None:
                sbi[key] = getattr(s, key)
        v = self.validation
        return {
            **self.simulation.to_dict(),
            "sbi": sbi,
            "npe": dict(self.npe),
            "validation": {
                "n_samples": v.n_samples,
                "coverage_tolerance": v.coverage_tolerance,
                "sbc_alpha": v.sbc_alpha,
                "seed": v.seed,
            },
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str | None = None) -> SBIConfig:
        """Validate a mapping as read from TOML."""
        raw = dict(raw)
        if "sbi" not in raw:
            raise ValueError("an SBI configuration needs an [sbi] table (see xtml.sbi.scenario)")
        sbi_t = raw.pop("sbi")
        npe_t = raw.pop("npe", {})
        val_t = raw.pop("validation", {})
        simulation = SimulationConfig.from_dict(raw)
        return cls(
            simulation=simulation,
            sbi=_sbi_spec(sbi_t, simulation),
            npe=_npe_table(npe_t),
            validation=_validation(val_t),
            source=source,
        )


def _int(t: Mapping[str, Any], key: str, default: int | None, low: int, where: str) -> int:
    v = t.get(key, default)
    if v is None:
        raise ValueError(f"[{where}] needs {key} (an integer >= {low})")
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ValueError(f"[{where}] {key} must be an integer >= {low}; got {v!r}")
    return v


def _names(t: Mapping[str, Any], key: str, default: tuple[str, ...], where: str) -> tuple[str, ...]:
    v = t.get(key, list(default))
    if not isinstance(v, list | tuple) or not all(isinstance(s, str) for s in v):
        raise ValueError(f"[{where}] {key} must be a list of strings; got {v!r}")
    if len(set(v)) != len(v):
        raise ValueError(f"[{where}] {key} lists a name twice: {list(v)}")
    return tuple(v)


def _sbi_spec(t: Mapping[str, Any], sim: SimulationConfig) -> SBISpec:
    w = "sbi"
    if not isinstance(t, Mapping):
        raise ValueError(f"[{w}] must be a table")
    _check_keys(t, _SBI_KEYS, w)
    classes = sim.class_names
    name = t.get("class", classes[0] if len(classes) == 1 else None)
    if name is None:
        raise ValueError(f"[{w}] class must name the class to infer, one of {list(classes)}")
    if name not in classes:
        raise ValueError(f"[{w}] class {name!r} is not a class of the simulation; classes: {list(classes)}")
    spec = sim.classes[classes.index(name)]
    available = (
        "rate",
        *[p for p in spec.model.param_names if not isinstance(spec.prior.priors[p], Fixed)],
    )
    params = _names(t, "parameters", available, w)
    bad = [p for p in params if p not in available]
    if bad or not params:
        raise ValueError(
            f"[{w}] parameters {bad or '[]'} cannot be inferred; free parameters of class {name!r}: "
            f"{list(available)}"
        )
    channels = _names(t, "channels", ("power",), w)
    for c in channels:
        if c not in CHANNELS:
            raise ValueError(f"[{w}] channel {c!r} is not one of {list(CHANNELS)}")
    if not channels:
        raise ValueError(f"[{w}] channels must name at least one spectrum, from {list(CHANNELS)}")
    if "cospectrum" in channels and sim.detector.n_modules < 2:
        raise ValueError(f"[{w}] the cospectrum channel needs n_modules >= 2 in [detector]")
    if "power_fad" in channels and not sim.observation.fad:
        raise ValueError(f"[{w}] the power_fad channel needs fad = true in [observation]")
    scalars = _names(t, "scalars", ("log_mean_rate",), w)
    for s in scalars:
        if s not in SCALARS:
            raise ValueError(f"[{w}] scalar {s!r} is not one of {list(SCALARS)}")
    for key in ("train_data", "test_data", "calibration_data"):
        if key in t and not isinstance(t[key], str):
            raise ValueError(f"[{w}] {key} must be a path string; got {t[key]!r}")
    n_test = _int(t, "n_test", 1000, 10, w)
    n_cal = _int(t, "n_calibration", n_test, 0, w)
    if 0 < n_cal < 10 * len(params):
        raise ValueError(
            f"[{w}] n_calibration must be 0 (no recalibration) or at least {10 * len(params)} "
            f"(10 per inferred parameter); got {n_cal}"
        )
    return SBISpec(
        n_train=_int(t, "n_train", None, 10, w),
        n_test=n_test,
        n_calibration=n_cal,
        calibration_data=t.get("calibration_data"),
        class_name=name,
        parameters=params,
        channels=channels,
        scalars=scalars,
        train_data=t.get("train_data"),
        test_data=t.get("test_data"),
    )


def _npe_table(t: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(t, Mapping):
        raise ValueError("[npe] must be a table of NPEConfig keys")
    from xtml.sbi.density import NPEConfig  # validates now (needs PyTorch: xtml[sbi])

    try:
        NPEConfig.from_dict(t)
    except (TypeError, ValueError) as err:
        raise ValueError(f"[npe] {err}") from None
    return dict(t)


def _validation(t: Mapping[str, Any]) -> ValidationSpec:
    w = "validation"
    if not isinstance(t, Mapping):
        raise ValueError(f"[{w}] must be a table")
    _check_keys(t, _VALIDATION_KEYS, w)
    tol = t.get("coverage_tolerance", 0.02)
    alpha = t.get("sbc_alpha", 0.01)
    for key, v in (("coverage_tolerance", tol), ("sbc_alpha", alpha)):
        if not isinstance(v, int | float) or isinstance(v, bool) or not 0 < v < 1:
            raise ValueError(f"[{w}] {key} must be a number in (0, 1); got {v!r}")
    return ValidationSpec(
        n_samples=_int(t, "n_samples", 1000, 10, w),
        coverage_tolerance=float(tol),
        sbc_alpha=float(alpha),
        seed=_int(t, "seed", 0, 0, w),
    )


def load_sbi_config(path: str | Path) -> SBIConfig:
    """Read and validate an SBI scenario file; errors name the file and the offending key."""
    p = Path(path)
    raw = read_toml(p, "SBI configuration file")
    try:
        return SBIConfig.from_dict(raw, source=str(p))
    except ValueError as err:
        raise ValueError(f"{p}: {err}") from None
