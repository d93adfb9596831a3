"""What the source does: power-spectral shapes and priors over their parameters.

All PSDs are single-sided, in fractional-rms normalisation ((rms/mean)^2/Hz), and are
evaluated for a batch of parameter vectors ``(n, n_params) -> (n, n_freq)``.
"""

from xtml.psd.components import (
    BendingPowerLaw,
    Component,
    Constant,
    Lorentzian,
    PowerLaw,
    ZeroCentredLorentzian,
)
from xtml.psd.model import COMPONENT_KINDS, PSDModel, make_component
from xtml.psd.priors import Fixed, JointPrior, LogUniform, Prior1D, Uniform, prior_from_config

__all__ = [
    "COMPONENT_KINDS",
    "BendingPowerLaw",
    "Component",
    "Constant",
    "Fixed",
    "JointPrior",
    "LogUniform",
    "Lorentzian",
    "PSDModel",
    "PowerLaw",
    "Prior1D",
    "Uniform",
    "ZeroCentredLorentzian",
    "make_component",
    "prior_from_config",
]
