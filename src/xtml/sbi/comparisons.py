"""Comparisons of samples: the classifier two-sample test and posterior predictive p-values.

* :func:`c2st` asks whether two sets of samples (e.g. a neural posterior's draws and an exact or MCMC
  reference posterior for the same observation) come from the same distribution, by the held-out
  accuracy of a classifier trained to tell them apart (Lopez-Paz & Oquab 2017; used by ``sbi`` to
  benchmark posteriors, Lueckmann et al. 2021).  0.5 means indistinguishable, 1 means disjoint.
* :func:`posterior_predictive_pvalue` and :func:`spectral_ppc` ask whether the observed data look like
  data replicated from the posterior (Gelman, Meng & Stern 1996): the fraction of replications whose
  discrepancy is at least the observed one.  A small p-value is a misfit the model cannot produce.

References
----------
Lopez-Paz & Oquab 2017, ICLR, arXiv:1610.06545.
Lueckmann, Boelts, Greenberg, Goncalves & Macke 2021, AISTATS, arXiv:2101.04653.
Gelman, Meng & Stern 1996, Statistica Sinica 6, 733.
Bayarri & Berger 2000, JASA 95, 1127.
Davison & Hinkley 1997, Bootstrap Methods and their Application, CUP, section 4.2.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

__all__ = [
    "PPC_STATISTICS",
    "ReferenceComparison",
    "SpectralPPCResult",
    "c2st",
    "compare_with_reference",
    "exact_posterior_draws",
    "posterior_predictive_pvalue",
    "spectral_ppc",
]

FloatArray = NDArray[np.float64]
RNGLike = np.random.Generator | int | None
Alternative = Literal["greater", "less", "two-sided"]

#: Discrepancy statistics of :func:`spectral_ppc`, in the order of its result.
PPC_STATISTICS: tuple[str, ...] = ("chi2", "max_ratio", "whittle")


# ----------------------------------------------------------------------------- C2ST


def _as_2d(x: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n, n_dims) or (n,), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (a NaN or inf was found)")
    return arr


def _default_classifier(kind: Literal["mlp", "hgb"], n_dims: int, n_train: int, seed: int) -> Any:
    if kind == "hgb":
        return HistGradientBoostingClassifier(max_iter=100, early_stopping=True, random_state=seed)
    width = int(np.clip(10 * n_dims, 32, 128))
    return MLPClassifier(
        hidden_layer_sizes=(width, width),
        learning_rate_init=3e-3,
        batch_size=min(500, n_train),
        max_iter=200,
        early_stopping=True,
        n_iter_no_change=10,
        random_state=seed,
    )


def c2st(
    a: ArrayLike,
    b: ArrayLike,
    *,
    rng: RNGLike,
    n_folds: int = 5,
    classifier: Literal["mlp", "hgb"] | ClassifierMixin | None = None,
    n_threads: int | None = 1,
) -> float:
    """Classifier two-sample test: cross-validated accuracy of telling ``a`` from ``b``.

    The samples are pooled, labelled 0 (``a``) and 1 (``b``), standardised with the pooled mean and
    standard deviation of each dimension (as ``sbi.utils.metrics.c2st`` does), and a classifier is
    trained on ``n_folds - 1`` stratified folds and scored on the held-out one.  The statistic is the
    mean held-out *balanced* accuracy (the accuracy when ``len(a) == len(b)``), so that 0.5 is chance
    whatever the sizes:

    .. math::

        \\mathrm{C2ST} = \\frac{1}{K}\\sum_{k=1}^{K} \\frac{1}{2}\\sum_{c=0}^{1}
        \\frac{\\#\\{\\hat y = c, y = c\\}_k}{\\#\\{y = c\\}_k}.

    If both samples come from the same distribution the held-out accuracy scatters around 0.5 with a
    standard deviation of about :math:`0.5 / \\sqrt{n_a + n_b}` (0.008 for 2 x 2000; 0.009-0.011 measured,
    with the fold and training randomness); values clearly
    above that measure how separable the distributions are (1 = disjoint).  The test only detects what
    the classifier can learn from that many samples.

    Parameters
    ----------
    a, b : array_like, shape (n_a, n_dims) and (n_b, n_dims)
        The two samples (1-D arrays are one dimension).
    rng : numpy.random.Generator, int or None
        Random state for the fold split and the classifier.
    n_folds : int
        Stratified cross-validation folds.
    classifier : {"mlp", "hgb"} or scikit-learn classifier, optional
        ``"mlp"`` (default): a two-hidden-layer ``MLPClassifier`` of width ``10 n_dims`` (clipped to
        32-128) with Adam and early stopping: 0.7-1.9 s for 2 x 2000 samples in 5 dimensions on one
        busy core (6-7 s for 2 x 10 000); it reaches the Bayes accuracy for smooth differences
        (shifts, scales, correlations).  ``"hgb"``: ``HistGradientBoostingClassifier``, 0.3-0.4 s
        (0.6 s for 2 x 10 000) but weaker on smooth differences (0.52 instead of 0.55 for a 0.3-sigma
        shift in 5-D).  Any other estimator is cloned, and its ``random_state`` set from ``rng`` if it has
        one.  The MLP's ``ConvergenceWarning`` (hitting ``max_iter``) is silenced: the held-out
        accuracy is still a valid statistic.
    n_threads : int or None
        BLAS / OpenMP threads while fitting (``threadpoolctl``); None leaves them alone.  The default
        1 is deliberate: the matrices are small, and on a shared, busy machine spin-waiting threads
        made one call 25 times (MLP) to 500 times (boosting) slower than a single thread.

    Returns
    -------
    float
        Mean held-out balanced accuracy in [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> same = c2st(rng.normal(size=(500, 2)), rng.normal(size=(500, 2)), rng=1)
    >>> shifted = c2st(rng.normal(size=(500, 2)), rng.normal(1.0, 1.0, size=(500, 2)), rng=1)
    >>> bool(abs(same - 0.5) < 0.05), bool(shifted > 0.7)
    (True, True)
    """
    xa, xb = _as_2d(a, "a"), _as_2d(b, "b")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(
            f"a and b must have the same number of dimensions, got {xa.shape[1]} and {xb.shape[1]}"
        )
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if min(len(xa), len(xb)) < n_folds:
        raise ValueError(f"each sample needs at least n_folds = {n_folds} rows, got {len(xa)} and {len(xb)}")
    x = np.vstack([xa, xb])
    y = np.r_[np.zeros(len(xa), dtype=np.int64), np.ones(len(xb), dtype=np.int64)]
    scale = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    gen = np.random.default_rng(rng)
    split_seed, model_seed = (int(v) for v in gen.integers(0, 2**31 - 1, size=2))
    if classifier is None or isinstance(classifier, str):
        kind = "mlp" if classifier is None else classifier
        if kind not in ("mlp", "hgb"):
            raise ValueError(f"classifier must be 'mlp', 'hgb' or a scikit-learn classifier, got {kind!r}")
        n_train = int(len(x) * (n_folds - 1) / n_folds)
        model = _default_classifier(kind, x.shape[1], n_train, model_seed)
    else:
        model = clone(classifier)
        if "random_state" in model.get_params():
            model.set_params(random_state=model_seed)
    folds = StratifiedKFold(n_splits=int(n_folds), shuffle=True, random_state=split_seed)
    if n_threads is not None and (int(n_threads) != n_threads or n_threads < 1):
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}")
    with threadpool_limits(limits=n_threads), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        scores = cross_val_score(model, x, y, cv=folds, scoring="balanced_accuracy")
    return float(np.mean(scores))


# ----------------------------------------------------------------------------- against a reference posterior


@dataclass(frozen=True)
class ReferenceComparison:
    """How far one observation's posterior draws are from reference draws (e.g. the exact MCMC).

    Attributes
    ----------
    c2st : float
        :func:`c2st` between the two sets of draws (0.5: indistinguishable).
    std_ratio : ndarray, shape (n_params,)
        Standard deviation of the draws over the reference's, per parameter (1: as sharp).
    """

    c2st: float
    std_ratio: FloatArray


def compare_with_reference(
    reference: ArrayLike,
    draws: ArrayLike,
    *,
    log: ArrayLike | None = None,
    rng: RNGLike,
) -> ReferenceComparison:
    """C2ST and ratio of standard deviations of posterior ``draws`` against ``reference`` draws.

    The C2ST is taken in the coordinates where the prior is flat (the logarithm of the parameters
    flagged in ``log``: a log-uniform prior's scale), so that the classifier sees the posterior's shape
    rather than the dynamic range of a scale parameter; the standard deviations are in the parameters'
    own units.

    Parameters
    ----------
    reference, draws : array_like, shape (n_ref, n_params) and (n_draws, n_params)
        Draws of the same observation's posterior, the columns in the same order; positive where
        ``log`` is set.
    log : array_like of bool, shape (n_params,), optional
        Columns compared in log (default: none).
    rng : numpy.random.Generator, int or None
        Random state of the C2ST.

    Returns
    -------
    ReferenceComparison

    Examples
    --------
    >>> gen = np.random.default_rng(0)
    >>> ref = gen.normal(size=(1000, 2))
    >>> cmp = compare_with_reference(ref, 2.0 * gen.normal(size=(1000, 2)), rng=0)
    >>> bool(cmp.c2st > 0.6), bool(np.all(np.abs(cmp.std_ratio - 2.0) < 0.2))
    (True, True)
    """
    a, b = _as_2d(reference, "reference"), _as_2d(draws, "draws")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"reference and draws must have the same parameters, got {a.shape[1]} and {b.shape[1]} columns"
        )
    mask = np.zeros(a.shape[1], dtype=bool) if log is None else np.asarray(log, dtype=bool)
    if mask.shape != (a.shape[1],):
        raise ValueError(f"log must have one flag per parameter ({a.shape[1]}), got shape {mask.shape}")
    for name, v in (("reference", a), ("draws", b)):
        bad = mask & np.any(v <= 0, axis=0)
        if bad.any():
            raise ValueError(f"{name} has values <= 0 in the log columns {np.flatnonzero(bad).tolist()}")
    a_t, b_t = a.copy(), b.copy()
    a_t[:, mask], b_t[:, mask] = np.log(a[:, mask]), np.log(b[:, mask])
    return ReferenceComparison(c2st=c2st(a_t, b_t, rng=rng), std_ratio=b.std(axis=0) / a.std(axis=0))


def exact_posterior_draws(
    spectrum: Any,
    model: Any,
    prior: Any,
    names: tuple[str, ...] | list[str],
    *,
    rng: int,
    max_draws: int = 4000,
    n_threads: int | None = 1,
) -> tuple[FloatArray, bool]:
    """Draws of the exact-likelihood posterior of one spectrum (emcee on the Whittle likelihood).

    The reference of a neural posterior where the likelihood is exact (independent segments, no
    detector effects: scenario (a)): :func:`xtml.reference.sample_posterior`, run until converged, its
    chain thinned at random to at most ``max_draws`` rows.

    Parameters
    ----------
    spectrum : PowerSpectrum
        One spectrum (``n = 1``).
    model : SpectralModel
        Expected power of the parameters (``noise="poisson"`` for the white level of the counts).
    prior : JointPrior
        Over the model's parameters.
    names : sequence of str
        Parameters of the result, in this order (a subset of the model's).
    rng : int
        Seed of the sampler and of the thinning.
    max_draws : int
        Rows kept.
    n_threads : int or None
        BLAS threads while sampling (1: the small matrix work is fastest on one thread; None leaves
        them alone).

    Returns
    -------
    draws : ndarray, shape (min(n_chain, max_draws), len(names))
    converged : bool
        Whether the sampler reached its effective-sample-size target.
    """
    from xtml.reference import sample_posterior

    if int(max_draws) != max_draws or max_draws < 1:
        raise ValueError(f"max_draws must be a positive integer, got {max_draws!r}")
    with threadpool_limits(limits=n_threads):
        mc = sample_posterior(spectrum, model, prior, rng=rng)
    missing = [n for n in names if n not in mc.param_names]
    if missing:
        raise ValueError(f"names {missing} are not parameters of the model {list(mc.param_names)}")
    a = mc.samples[:, [mc.param_names.index(n) for n in names]]
    keep = np.random.default_rng(rng).choice(len(a), min(len(a), int(max_draws)), replace=False)
    return a[keep], bool(mc.converged)


# ----------------------------------------------------------------------------- posterior predictive


def posterior_predictive_pvalue(
    observed_stat: ArrayLike, replicated_stats: ArrayLike, *, alternative: Alternative = "greater"
) -> float:
    """Posterior predictive p-value of a discrepancy statistic.

    With ``n`` replications :math:`T^{rep}_k` (one per posterior draw :math:`\\theta_k`) and the observed
    :math:`T^{obs}` (a scalar, or :math:`T(y^{obs}, \\theta_k)` per draw for a discrepancy that depends
    on the parameters, Gelman et al. 1996),

    .. math::

        p = \\frac{1 + \\#\\{k : T^{rep}_k \\ge T^{obs}_k\\}}{1 + n}
        \\quad (\\text{"greater"; "less" counts } \\le, \\text{ "two-sided" is } \\min(1, 2 \\min p)).

    The :math:`+1` (Davison & Hinkley 1997) makes ``p`` exactly uniform on :math:`\\{1, \\dots, n+1\\}/(n+1)`
    when the observation is exchangeable with the replications, and never 0 from a finite ``n``.

    .. note::

        A posterior predictive p-value uses the data twice (to fit, then to check), so under a correct
        model it is *conservative*: concentrated towards 1/2 rather than uniform, the more so the more
        the statistic depends on the fitted parameters (Bayarri & Berger 2000).  Small values still
        flag a misfit; large values are weak evidence of fit.

    Parameters
    ----------
    observed_stat : float or array_like, shape (n,)
        Observed discrepancy (shared, or one per replication).
    replicated_stats : array_like, shape (n,)
        Discrepancy of each replicated data set.
    alternative : {"greater", "less", "two-sided"}
        Which tail is extreme; "greater" for discrepancies where large means misfit.

    Returns
    -------
    float

    Examples
    --------
    Seven of ten replications are at least as large as the observed 3:

    >>> posterior_predictive_pvalue(3.0, np.arange(10.0))
    0.7272727272727273
    """
    rep = np.asarray(replicated_stats, dtype=np.float64)
    obs = np.asarray(observed_stat, dtype=np.float64)
    if rep.ndim != 1 or rep.size < 1:
        raise ValueError(f"replicated_stats must be a non-empty 1-D array, got shape {rep.shape}")
    if obs.ndim > 1 or (obs.ndim == 1 and obs.shape != rep.shape):
        raise ValueError(f"observed_stat must be a scalar or have shape {rep.shape}, got {obs.shape}")
    if np.isnan(rep).any() or np.isnan(obs).any():
        raise ValueError("observed_stat and replicated_stats must not contain NaN")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    n = rep.size
    upper = (1 + np.count_nonzero(rep >= obs)) / (1 + n)
    lower = (1 + np.count_nonzero(rep <= obs)) / (1 + n)
    if alternative == "greater":
        return float(upper)
    if alternative == "less":
        return float(lower)
    return float(min(1.0, 2.0 * min(upper, lower)))


@dataclass(frozen=True)
class SpectralPPCResult:
    """Posterior predictive p-values of power-spectrum discrepancies.

    Attributes
    ----------
    statistics : tuple of str
        Names, :data:`PPC_STATISTICS`.
    pvalues : ndarray, shape (n_stats,)
        One-sided ("greater") p-value of each statistic.
    observed : ndarray, shape (n_stats, n_rep)
        Discrepancy of the observed spectrum against each replication's model.
    replicated : ndarray, shape (n_stats, n_rep)
        Discrepancy of each replicated spectrum against its own model.
    """

    statistics: tuple[str, ...]
    pvalues: FloatArray
    observed: FloatArray
    replicated: FloatArray

    def pvalue(self, name: str) -> float:
        """The p-value of one statistic by name."""
        if name not in self.statistics:
            raise KeyError(f"unknown statistic {name!r}; have {self.statistics}")
        return float(self.pvalues[self.statistics.index(name)])


def _spectral_discrepancies(power: FloatArray, model: FloatArray, m: FloatArray) -> FloatArray:
    """Statistics of :data:`PPC_STATISTICS` for rows of ``power`` against ``model``, shape (3, n_rows)."""
    ratio = power / model
    chi2 = (m * (ratio - 1.0) ** 2).sum(axis=-1)
    max_ratio = (2.0 * m * ratio).max(axis=-1)
    whittle = 2.0 * (m * (ratio - np.log(ratio) - 1.0)).sum(axis=-1)
    return np.stack([chi2, max_ratio, whittle])


def spectral_ppc(
    observed_power: ArrayLike,
    replicated_power: ArrayLike,
    *,
    model_power: ArrayLike | None = None,
    m: ArrayLike = 1,
) -> SpectralPPCResult:
    """Posterior predictive checks of a power spectrum against spectra simulated from posterior draws.

    An averaged periodogram of ``m`` independent powers is :math:`P_f = S_f \\chi^2_{2m}/(2m)` about its
    model :math:`S_f`, so three discrepancies, each "large = misfit", are

    .. math::

        \\chi^2 = \\sum_f m \\left(\\frac{P_f}{S_f} - 1\\right)^2, \\qquad
        R_{max} = \\max_f \\frac{2 m P_f}{S_f}, \\qquad
        D_W = 2 \\sum_f m \\left(\\frac{P_f}{S_f} - \\ln\\frac{P_f}{S_f} - 1\\right),

    the sum of squared standardised residuals (broad misfit), the largest outlier (a narrow feature such
    as an unmodelled QPO) and the Whittle deviance against the saturated model.  With ``model_power``
    (:math:`S(\\theta_k)` of each draw) they are realised discrepancies, compared draw by draw: the
    observed spectrum against :math:`S(\\theta_k)` versus replication :math:`k` against the same
    :math:`S(\\theta_k)`.  Without it, each spectrum of the pool (observed, replications) is compared with
    the mean of all the *others*, :math:`S_{(-i)}`, so the observed statistic and the replicated ones are
    exchangeable when the observation is a draw like the replications: the p-value is then exactly
    uniform (comparing every spectrum with the plain replication mean, which contains the replication
    itself but not the observation, made the observed one look too discrepant).  Each p-value is
    :func:`posterior_predictive_pvalue` ("greater").
    Only arrays are used: any normalisation works if observed, replicated and model powers share it.

    Parameters
    ----------
    observed_power : array_like, shape (n_freq,)
        The observed (averaged) power, e.g. one row of ``PowerSpectrum.power``.
    replicated_power : array_like, shape (n_rep, n_freq)
        Spectra simulated from posterior draws, processed exactly like the observed one.
    model_power : array_like, shape (n_rep, n_freq) or (n_freq,), optional
        Model spectrum of each draw (including the noise level); must be positive.
    m : int or array_like, shape (n_freq,)
        Powers averaged in each bin (``PowerSpectrum.m``), for the standardisation.

    Returns
    -------
    SpectralPPCResult
    """
    obs = np.asarray(observed_power, dtype=np.float64)
    rep = np.asarray(replicated_power, dtype=np.float64)
    if obs.ndim != 1 or rep.ndim != 2 or rep.shape[1] != obs.size:
        raise ValueError(
            f"observed_power must have shape (n_freq,) and replicated_power (n_rep, n_freq), got "
            f"{obs.shape} and {rep.shape}"
        )
    if not (np.all(obs > 0) and np.all(rep > 0)):
        raise ValueError("observed_power and replicated_power must be positive (log of P/S is taken)")
    mm = np.broadcast_to(np.asarray(m, dtype=np.float64), obs.shape)
    if not np.all(mm >= 1):
        raise ValueError(f"m must be >= 1 in every bin, got minimum {mm.min()}")
    if model_power is None:
        if rep.shape[0] < 2:
            raise ValueError(f"need at least 2 replications without model_power, got {rep.shape[0]}")
        pooled = np.vstack([obs, rep])
        leave_one_out = (pooled.sum(axis=0) - pooled) / (len(pooled) - 1)
        both = _spectral_discrepancies(pooled, leave_one_out, mm)
        observed, replicated = both[:, :1], both[:, 1:]
    else:
        model = np.asarray(model_power, dtype=np.float64)
        if model.shape not in (obs.shape, rep.shape):
            raise ValueError(f"model_power must have shape {obs.shape} or {rep.shape}, got {model.shape}")
        if not np.all(model > 0):
            raise ValueError("model_power must be positive")
        observed = _spectral_discrepancies(obs, model, mm).reshape(len(PPC_STATISTICS), -1)
        replicated = _spectral_discrepancies(rep, model, mm)
    observed = np.broadcast_to(observed, replicated.shape).copy()
    pvalues = np.array(
        [posterior_predictive_pvalue(o, r) for o, r in zip(observed, replicated, strict=True)],
        dtype=np.float64,
    )
    return SpectralPPCResult(
        statistics=PPC_STATISTICS, pvalues=pvalues, observed=observed, replicated=replicated
    )
