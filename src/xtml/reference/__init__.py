"""The domain reference: analytic, classical answers that xtml's machine-learning results are compared with.

Before a network learns a detector effect, the classical reference says what is known exactly (rule 1 of
Huppenkothen, Ntampaka et al. 2023: compare against a domain reference):

* dead time (:mod:`xtml.reference.deadtime`): detected and incident rates for non-paralyzable and
  paralyzable dead time, and the Zhang et al. (1995) dead-time-modified Leahy power spectrum of Poisson noise
  (identical to Stingray's ``pds_model_zhang``, much faster);
* pile-up (:mod:`xtml.reference.pileup`): Poisson pile-up fractions and event rates of a framed detector;
* the one forward model (:mod:`xtml.reference.likelihood`, :mod:`xtml.reference.binning`): the expected
  power of a spectrum, :class:`SpectralModel` — the source PSD averaged over each bin's Fourier frequencies
  and seen through the binning response and aliasing of the light curves it was made from (the simulator's
  fine grid, or photons counted in bins), with the dead-time gain and background dilution, plus white noise
  (Zhang's shape under dead time) — and the exact Whittle likelihood of averaged, rebinned spectra;
* maximum-likelihood fits with Hessian errors (:func:`fit_spectra`), QPO tests with posterior-predictive
  calibration (:func:`qpo_scores`, :func:`calibrate`), MCMC posteriors (:func:`sample_posterior`) and the
  Laplace likelihood of cospectra, all on the same model function as the simulation-based inference.
"""

from xtml.reference.binning import ModelGrid, binning_response, model_grid
from xtml.reference.cospectrum import (
    COSPECTRUM_KINDS,
    EXACT_MAX_M,
    CospectrumKind,
    cospectrum_loglike,
    exp_difference_logpdf,
    laplace_mean_logpdf,
    log_likelihood_cospectrum,
)
from xtml.reference.deadtime import (
    DeadTimeKind,
    detected_rate,
    incident_rate,
    zhang_coefficients,
    zhang_leahy,
    zhang_leahy_at,
    zhang_leahy_for_spectrum,
)
from xtml.reference.defaults import default_bounds
from xtml.reference.fit import FitResult, fit_spectra
from xtml.reference.likelihood import NOISE_KINDS, NoiseKind, SpectralModel, log_likelihood, whittle_loglike
from xtml.reference.mcmc import LogLikelihood, MCMCResult, NotConvergedError, sample_posterior
from xtml.reference.pileup import detected_event_rate, photon_loss_fraction, pileup_fraction
from xtml.reference.qpo import QPOTestResult, calibrate, qpo_scores
from xtml.reference.qpo_lrt import QPOFitWarning, lrt_statistic
from xtml.reference.qpo_stats import max_outlier_statistic, sample_spectra, single_bin_significance
from xtml.reference.space import Bounds, bound_pairs
from xtml.reference.starts import start_values

__all__ = [
    "COSPECTRUM_KINDS",
    "EXACT_MAX_M",
    "NOISE_KINDS",
    "Bounds",
    "CospectrumKind",
    "DeadTimeKind",
    "FitResult",
    "LogLikelihood",
    "MCMCResult",
    "ModelGrid",
    "NoiseKind",
    "NotConvergedError",
    "QPOFitWarning",
    "QPOTestResult",
    "SpectralModel",
    "binning_response",
    "bound_pairs",
    "calibrate",
    "cospectrum_loglike",
    "default_bounds",
    "detected_event_rate",
    "detected_rate",
    "exp_difference_logpdf",
    "fit_spectra",
    "incident_rate",
    "laplace_mean_logpdf",
    "log_likelihood",
    "log_likelihood_cospectrum",
    "lrt_statistic",
    "max_outlier_statistic",
    "model_grid",
    "photon_loss_fraction",
    "pileup_fraction",
    "qpo_scores",
    "sample_posterior",
    "sample_spectra",
    "single_bin_significance",
    "start_values",
    "whittle_loglike",
    "zhang_coefficients",
    "zhang_leahy",
    "zhang_leahy_at",
    "zhang_leahy_for_spectrum",
]
