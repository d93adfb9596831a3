"""The scope gate: refuse to trust a model on data unlike its training set.

A model answers on any input; the gate says whether the input looks like the data the model was trained
on. It has two parts, both fitted on the training inputs and saved as JSON with the model:

1. **The training domain** (:class:`TrainingDomain`): what the training data covered and the model
   cannot extrapolate from: the frequency grid (bin time, segment length, number of averaged segments,
   normalisation), the range of mean count rates, the detector settings and the parameter ranges of the
   prior. An input outside it is out of scope, with the reason named.
2. **A density model on the inputs** (:class:`ScopeGate`): the standardised features (log-powers per
   frequency bin and the log mean rate) are projected on their leading principal components; the
   in-scope statistic combines Hotelling's

   .. math::

       T^2 = \\sum_{j \\le k} t_j^2 / \\lambda_j,

   the distance inside the principal subspace (scores :math:`t_j`, eigenvalues :math:`\\lambda_j`), and
   the squared prediction error :math:`Q = \\lVert z - \\hat z \\rVert^2`, the part of the standardised
   input :math:`z` that the subspace does not explain (Jackson & Mudholkar 1979; MacGregor & Kourti 1995).
   The window of a data gap or a broad feature the training spectra never had leaves the subspace and
   raises :math:`Q`; a count rate or QPO far outside the training range raises :math:`T^2`. A narrow
   feature (a pulsar's harmonic in one frequency bin) adds little to a sum over 100+ bins, so a third
   statistic is the largest excess of one bin over the subspace, in units of what that bin allows,
   :math:`R = \\max_i (z_i - \\hat z_i) / s_i`, with :math:`s_i` the 99th percentile of the training
   residuals of bin :math:`i` (excess only: the log of an averaged power has a long tail towards low
   values; per bin: where the prior puts narrow QPOs a bin allows large excesses, elsewhere it does
   not). Each statistic is divided by its
   :math:`(1 - \\alpha/3)` quantile on held-out training inputs, and the largest ratio ``s`` is the score.
   The in-scope p-value is the fraction of held-out training inputs with a larger score, so that held-out
   in-distribution inputs are flagged at a rate of about ``alpha`` (measured, and shown by the tests).

The gate is a linear-Gaussian density model: it flags what is far from the bulk of the training inputs,
not every input on which the model would fail. Performance maps (:mod:`xtml.critique.performance`) show
where inside the scope a model works.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "SCOPE_FORMAT",
    "ScopeGate",
    "ScopeResult",
    "TrainingDomain",
    "gap_reasons",
    "log_spectral_features",
]

SCOPE_FORMAT = "xtml-scope-gate"
SCOPE_VERSION = 1
GRID_RTOL = 1e-6  # relative tolerance on the frequency-grid bin centres
RESIDUAL_QUANTILE = 0.99  # the unit of R in each bin: this quantile of the training residuals
_DRIVERS = (
    "T^2 (far from the training inputs along their main directions)",
    "Q (broad structure the training spectra do not have)",
    "R (one frequency bin far from what the training spectra allow, e.g. a narrow spike)",
)


def log_spectral_features(power: ArrayLike, mean_rate: ArrayLike | None = None) -> NDArray[np.float64]:
    """The gate's features of spectra: natural log of the powers, then the log10 mean rate (ct/s).

    Parameters
    ----------
    power : array-like of shape (n, n_freq)
        Averaged powers (any normalisation, all > 0).
    mean_rate : array-like of shape (n,), optional
        Mean count rates (> 0), appended as one last column.

    Returns
    -------
    ndarray of shape (n, n_freq) or (n, n_freq + 1)
    """
    p = np.asarray(power, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"power must have shape (n, n_freq); got shape {p.shape}")
    bad = ~(np.isfinite(p) & (p > 0))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"power must be finite and > 0 to take its log; row {i}, bin {j} holds {float(p[i, j])!r} "
            f"({int(bad.sum())} such values)"
        )
    out = np.log(p)
    if mean_rate is None:
        return out
    r = np.asarray(mean_rate, dtype=np.float64).reshape(-1)
    if r.shape[0] != p.shape[0] or not np.all(np.isfinite(r) & (r > 0)):
        raise ValueError(f"mean_rate must hold {p.shape[0]} finite rates > 0; got {r[:5]!r}...")
    return np.column_stack([out, np.log10(r)])


def gap_reasons(
    counts: ArrayLike, dt: float, *, alpha: float = 1e-6, window: float = 1.0, min_gap: float = 0.25
) -> list[list[str]]:
    """Stretches without counts that a Poisson light curve of the same mean rate would not have.

    A data gap left inside a light curve (a telemetry drop-out, an unfiltered SAA passage) distorts the
    power spectrum like red noise, so the spectral gate flags it only when it is long; it is plain in the
    time domain. For a light curve of ``n`` bins with ``mu`` counts per bin around a run of ``k`` empty
    bins (measured over ``window`` on each side), the expected number of such runs is about
    :math:`n\\,e^{-\\mu k}`;
    a run is reported when that is below ``alpha`` (computed in logs: no underflow).

    Parameters
    ----------
    counts : array-like of shape (n_bins,) or (n, n_bins)
        Counts per bin (summed over modules).
    dt : float
        Bin time, s.
    alpha : float, default=1e-6
        Expected number of such runs in a Poisson light curve without gaps (small: a strongly variable
        source dips towards zero more often than a Poisson process at its local mean rate).
    window : float, default=1.0
        The local rate is measured over ``max(k bins, window)`` on each side of the run, s.
    min_gap : float, default=0.25
        Shorter empty stretches are not reported, s: a source with tens of per cent rms dips to zero
        for tens of ms (a Gaussian rate process crosses zero; the simulator clips it there), seen in
        about 3 % of the simulated 32 s light curves of 200-2000 ct/s in the tests.

    Returns
    -------
    list of list of str
        Per light curve, one reason per gap (empty: no gap).
    """
    from xtml.timing.gaps import find_gaps

    c = np.atleast_2d(np.asarray(counts))
    if not dt > 0:
        raise ValueError(f"dt must be > 0; got {dt!r}")
    out: list[list[str]] = []
    for row in c:
        if row.sum() <= 0:
            out.append(["the light curve holds no counts"])
            continue
        gaps = find_gaps(row, dt, alpha=alpha, window=window, min_gap=min_gap)
        reasons = [g.text(dt) for g in gaps]
        out.append(reasons)
    return out


@dataclass(frozen=True)
class TrainingDomain:
    """What the training data covered; inputs outside it are out of scope whatever their features.

    Attributes
    ----------
    freq : ndarray of shape (n_freq,)
        Bin centres of the training spectra, Hz.
    m : ndarray of shape (n_freq,)
        Powers averaged per bin (segments x frequencies): a different number of segments changes it.
    segment_length : float
        Segment length, s.
    norm : str
        Power normalisation.
    rate_range : (float, float)
        Smallest and largest mean count rate of the training spectra, ct/s (as measured, after dead time;
        the total of all modules summed into the spectra: :attr:`rate_label`).
    rate_margin : float
        Factor by which a rate may leave ``rate_range`` before it is out of scope (default 1.2: the
        measured rates of a finite training set do not reach the prior's edges).
    parameters : dict of str to (float, float)
        Prior range of each parameter (for the model card; an input has no true parameters to check).
    detector : dict
        Detector settings of the simulator (dead time, modules, pile-up...), for the model card and for
        comparison with the settings of real data where they are known.
    """

    freq: NDArray[np.float64]
    m: NDArray[np.float64]
    segment_length: float
    norm: str
    rate_range: tuple[float, float]
    rate_margin: float = 1.2
    parameters: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    detector: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        freq = np.asarray(self.freq, dtype=np.float64)
        m = np.broadcast_to(np.asarray(self.m, dtype=np.float64), freq.shape).copy()
        if freq.ndim != 1 or freq.size == 0 or not np.all(np.isfinite(freq)):
            raise ValueError(f"freq must be a non-empty finite 1-D array; got shape {freq.shape}")
        lo, hi = (float(v) for v in self.rate_range)
        if not (0 < lo <= hi < math.inf):
            raise ValueError(f"rate_range must be 0 < low <= high < inf; got {self.rate_range!r}")
        if not self.rate_margin >= 1:
            raise ValueError(f"rate_margin must be >= 1; got {self.rate_margin!r}")
        object.__setattr__(self, "freq", freq)
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "rate_range", (lo, hi))
        object.__setattr__(
            self, "parameters", {k: (float(a), float(b)) for k, (a, b) in self.parameters.items()}
        )
        object.__setattr__(self, "detector", dict(self.detector))

    def check(
        self,
        *,
        freq: ArrayLike | None = None,
        m: ArrayLike | None = None,
        segment_length: float | None = None,
        norm: str | None = None,
        mean_rate: float | None = None,
    ) -> list[str]:
        """Reasons why an input with these properties is out of the training domain (empty: inside).

        Properties left as None are not checked.
        """
        reasons: list[str] = []
        if norm is not None and norm != self.norm:
            reasons.append(f"normalisation {norm!r} differs from the training {self.norm!r}")
        if segment_length is not None and not math.isclose(segment_length, self.segment_length, rel_tol=1e-6):
            reasons.append(
                f"segment length {segment_length:g} s differs from the training {self.segment_length:g} s"
            )
        if freq is not None:
            f = np.asarray(freq, dtype=np.float64)
            if f.shape != self.freq.shape or not np.allclose(f, self.freq, rtol=GRID_RTOL, atol=0):
                reasons.append(
                    f"frequency grid of {f.size} bins ({f.min():.4g}-{f.max():.4g} Hz) differs from the "
                    f"training grid of {self.freq.size} bins ({self.freq[0]:.4g}-{self.freq[-1]:.4g} Hz)"
                )
            elif m is not None:
                mm = np.broadcast_to(np.asarray(m, dtype=np.float64), f.shape)
                if not np.allclose(mm, self.m, rtol=1e-9):
                    reasons.append(
                        f"{float(np.median(mm / self.m)):g} times the training number of averaged powers "
                        "per bin (a different number of segments)"
                    )
        if mean_rate is not None:
            lo, hi = self.rate_range
            if not (lo / self.rate_margin <= mean_rate <= hi * self.rate_margin):
                reasons.append(
                    f"mean count rate {mean_rate:.4g} ct/s outside the training range {lo:.4g}-{hi:.4g} ct/s"
                    f" ({self.rate_label})"
                )
        return reasons

    @property
    def rate_label(self) -> str:
        """What the rates of :attr:`rate_range` are: ``"total of the 2 modules"`` or ``"one module"``."""
        det = self.detector.get("detector", self.detector)  # run scopes keep the config's [detector] table
        n = int(det.get("n_modules", 1) or 1) if isinstance(det, Mapping) else 1
        return f"detected, total of the {n} modules" if n > 1 else "detected, one module"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "freq": self.freq.tolist(),
            "m": self.m.tolist(),
            "segment_length": self.segment_length,
            "norm": self.norm,
            "rate_range": list(self.rate_range),
            "rate_margin": self.rate_margin,
            "parameters": {k: list(v) for k, v in self.parameters.items()},
            "detector": self.detector,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainingDomain:
        """Inverse of :meth:`to_dict`."""
        return cls(
            freq=np.asarray(d["freq"], dtype=np.float64),
            m=np.asarray(d["m"], dtype=np.float64),
            segment_length=float(d["segment_length"]),
            norm=str(d["norm"]),
            rate_range=tuple(d["rate_range"]),  # type: ignore[arg-type]
            rate_margin=float(d.get("rate_margin", 1.2)),
            parameters={k: tuple(v) for k, v in d.get("parameters", {}).items()},
            detector=d.get("detector", {}),
        )


@dataclass(frozen=True)
class ScopeResult:
    """The gate's answer for a batch of inputs.

    Attributes
    ----------
    score : ndarray of shape (n,)
        ``max(T2 / t2_threshold, Q / q_threshold, R / r_threshold)``: above 1 is beyond the held-out
        training quantile of at least one statistic.
    p_value : ndarray of shape (n,)
        In-scope p-value: fraction of held-out training inputs with a score at least as large (the
        smallest reportable value is ``1 / (n_holdout + 1)``).
    t2, q, r : ndarray of shape (n,)
        Hotelling's T^2, the squared prediction error and the largest standardised residual of one bin.
    in_scope : ndarray of bool, shape (n,)
        False where the features are unusual (``p_value < alpha``) or the domain check failed.
    reasons : tuple of tuple of str
        Per input, why it is out of scope (empty when in scope).
    """

    score: NDArray[np.float64]
    p_value: NDArray[np.float64]
    t2: NDArray[np.float64]
    q: NDArray[np.float64]
    r: NDArray[np.float64]
    in_scope: NDArray[np.bool_]
    reasons: tuple[tuple[str, ...], ...]

    @property
    def n_out(self) -> int:
        """Number of inputs flagged out of scope."""
        return int((~self.in_scope).sum())

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per input."""
        return [
            {
                "in_scope": bool(self.in_scope[i]),
                "scope_p": float(self.p_value[i]),
                "scope_score": float(self.score[i]),
                "reasons": list(self.reasons[i]),
            }
            for i in range(self.score.size)
        ]


class ScopeGate:
    """PCA density gate (Hotelling T^2 and Q) on input features, with a training domain; see the module doc.

    Parameters
    ----------
    alpha : float, default=0.01
        Target rate of flagging held-out in-distribution inputs.
    variance : float, default=0.99
        Fraction of the standardised variance the principal subspace keeps (at most ``max_components``).
    max_components : int, default=20
        Upper limit on the principal components.
    holdout : float, default=0.25
        Fraction of the fitting inputs held out to set the thresholds (the subspace is fitted on the rest,
        so that the thresholds are not optimistic).
    random_state : int, Generator or None, default=0
        Seeds the hold-out split.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation of the features.
    components_ : ndarray of shape (k, n_features)
        Leading principal axes; ``eigenvalues_`` their variances.
    residual_scale_ : ndarray of shape (n_features,)
        99th percentile of each feature's residual from the subspace on the fitting inputs (the unit of R).
    t2_threshold_, q_threshold_, r_threshold_ : float
        ``(1 - alpha/3)`` quantiles of T^2, Q and R on the held-out inputs.
    holdout_scores_ : ndarray
        Sorted scores of the held-out inputs (the reference of the p-values).
    domain_ : TrainingDomain or None
    """

    def __init__(
        self,
        *,
        alpha: float = 0.01,
        variance: float = 0.99,
        max_components: int = 20,
        holdout: float = 0.25,
        random_state: int | np.random.Generator | None = 0,
    ) -> None:
        self.alpha = alpha
        self.variance = variance
        self.max_components = max_components
        self.holdout = holdout
        self.random_state = random_state

    def fit(self, features: ArrayLike, domain: TrainingDomain | None = None) -> ScopeGate:
        """Fit on training features of shape (n, n_features); ``domain`` describes the training data."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 20:
            raise ValueError(f"features must have shape (n >= 20, n_features); got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"features hold {int((~np.isfinite(x)).sum())} non-finite values")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5); got {self.alpha!r}")
        if not 0 < self.variance <= 1:
            raise ValueError(f"variance must be in (0, 1]; got {self.variance!r}")
        if not 0 < self.holdout < 1:
            raise ValueError(f"holdout must be in (0, 1); got {self.holdout!r}")
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(x.shape[0])
        n_hold = max(10, round(self.holdout * x.shape[0]))
        hold, fit = x[order[:n_hold]], x[order[n_hold:]]
        self.mean_ = fit.mean(axis=0)
        std = fit.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        z = (fit - self.mean_) / self.scale_
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        var = s**2 / max(1, z.shape[0] - 1)
        frac = np.cumsum(var) / var.sum()
        k = int(min(self.max_components, np.searchsorted(frac, self.variance) + 1, len(var)))
        self.components_ = vt[:k]
        self.eigenvalues_ = np.maximum(var[:k], 1e-12 * var[0])
        resid = z - (z @ self.components_.T) @ self.components_
        # per-bin 99th percentile of the excess: large where the training spectra have narrow QPOs, small
        # where they have only noise, so that a spike counts in units of what that bin usually allows
        rs = np.quantile(resid, RESIDUAL_QUANTILE, axis=0)
        self.residual_scale_ = np.where(rs > 1e-9, rs, 1.0)
        t2, q, r = self._statistics(hold)
        level = 1 - self.alpha / 3
        self.t2_threshold_ = float(np.quantile(t2, level))
        self.q_threshold_ = float(max(np.quantile(q, level), 1e-12))
        self.r_threshold_ = float(max(np.quantile(r, level), 1e-12))
        self.holdout_scores_ = np.sort(self._combine(t2, q, r))
        self.domain_ = domain
        return self

    def _statistics(
        self, x: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        z = (x - self.mean_) / self.scale_
        t = z @ self.components_.T
        t2 = np.sum(t**2 / self.eigenvalues_, axis=1)
        resid = z - t @ self.components_
        q = np.sum(resid**2, axis=1)
        r = np.max(resid / self.residual_scale_, axis=1)
        return t2, q, r

    def _ratios(
        self, t2: NDArray[np.float64], q: NDArray[np.float64], r: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        return np.stack([t2 / self.t2_threshold_, q / self.q_threshold_, r / self.r_threshold_])

    def _combine(
        self, t2: NDArray[np.float64], q: NDArray[np.float64], r: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        return np.max(self._ratios(t2, q, r), axis=0)

    def score(
        self,
        features: ArrayLike,
        *,
        domain_reasons: Sequence[Sequence[str]] | None = None,
    ) -> ScopeResult:
        """Score inputs of shape (n, n_features); ``domain_reasons`` from :meth:`TrainingDomain.check`."""
        if not hasattr(self, "components_"):
            raise RuntimeError("the scope gate is not fitted; call fit() or load a fitted gate")
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.shape[1] != self.mean_.size:
            raise ValueError(f"the gate was fitted on {self.mean_.size} features per input; got {x.shape[1]}")
        finite = np.all(np.isfinite(x), axis=1)
        t2, q, r = self._statistics(np.where(np.isfinite(x), x, 0.0))
        ratios = self._ratios(t2, q, r)
        score = ratios.max(axis=0)
        driver = ratios.argmax(axis=0)
        score[~finite] = np.inf
        n_hold = self.holdout_scores_.size
        larger = n_hold - np.searchsorted(self.holdout_scores_, score, side="left")
        p = (larger + 1) / (n_hold + 1)
        reasons: list[tuple[str, ...]] = []
        for i in range(x.shape[0]):
            why = list(domain_reasons[i]) if domain_reasons is not None else []
            if not finite[i]:
                why.append("non-finite features")
            elif p[i] < self.alpha:
                part = _DRIVERS[int(driver[i])]
                why.append(f"unusual input: scope p = {p[i]:.2g} < {self.alpha:g}, driven by {part}")
            reasons.append(tuple(why))
        in_scope = np.array([not r for r in reasons], dtype=bool)
        return ScopeResult(score=score, p_value=p, t2=t2, q=q, r=r, in_scope=in_scope, reasons=tuple(reasons))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the fitted gate (no pickles)."""
        return {
            "format": SCOPE_FORMAT,
            "format_version": SCOPE_VERSION,
            "params": {
                "alpha": self.alpha,
                "variance": self.variance,
                "max_components": self.max_components,
                "holdout": self.holdout,
            },
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "components": self.components_.tolist(),
            "eigenvalues": self.eigenvalues_.tolist(),
            "residual_scale": self.residual_scale_.tolist(),
            "t2_threshold": self.t2_threshold_,
            "q_threshold": self.q_threshold_,
            "r_threshold": self.r_threshold_,
            "holdout_scores": self.holdout_scores_.tolist(),
            "domain": None if self.domain_ is None else self.domain_.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScopeGate:
        """Inverse of :meth:`to_dict`; a file of another format or a newer version is refused."""
        if d.get("format") != SCOPE_FORMAT:
            raise ValueError(f"not an xtml scope gate (format {d.get('format')!r})")
        if int(d.get("format_version", 0)) > SCOPE_VERSION:
            raise ValueError(
                f"scope gate format version {d['format_version']} is newer than this xtml's "
                f"{SCOPE_VERSION}; upgrade xtml"
            )
        gate = cls(**{k: v for k, v in d["params"].items() if k != "random_state"})
        gate.mean_ = np.asarray(d["mean"], dtype=np.float64)
        gate.scale_ = np.asarray(d["scale"], dtype=np.float64)
        gate.components_ = np.asarray(d["components"], dtype=np.float64).reshape(-1, gate.mean_.size)
        gate.eigenvalues_ = np.asarray(d["eigenvalues"], dtype=np.float64)
        gate.residual_scale_ = np.asarray(d["residual_scale"], dtype=np.float64)
        gate.t2_threshold_ = float(d["t2_threshold"])
        gate.q_threshold_ = float(d["q_threshold"])
        gate.r_threshold_ = float(d["r_threshold"])
        gate.holdout_scores_ = np.asarray(d["holdout_scores"], dtype=np.float64)
        gate.domain_ = None if d.get("domain") is None else TrainingDomain.from_dict(d["domain"])
        return gate
