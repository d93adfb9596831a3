"""The power spectrum itself, log-scaled, as features: :class:`LogSpectrum`.

The alternative to the hand-crafted features of :mod:`xtml.learn.spectral_features`: the Leahy powers of
the standard input matrix of :func:`~xtml.learn.inputs.spectra_to_X` (shape (n, n_freq + 1): powers on a
:class:`~xtml.learn.inputs.SpectralGrid`, then the mean count rate in ct/s) on a logarithmic scale, in
units of the Poisson level or as :math:`\\nu P_\\nu` in fractional-rms normalisation, optionally followed
by the log count rate.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted, validate_data

from xtml.learn.inputs import SpectralGrid, check_spectral_X
from xtml.learn.spectral_features import _check_grid, _check_positive, _names_out

__all__ = ["LogSpectrum"]

FloatArray = NDArray[np.float64]


class LogSpectrum(TransformerMixin, BaseEstimator):
    """The spectrum itself on a logarithmic scale, as an alternative input to hand-crafted features.

    With :math:`P'_j = \\max(P_j - 2 s,\\ P_{floor})` (:math:`s = 1` if ``subtract_poisson``, else 0):

    * ``scale="leahy"``: :math:`\\log_{10}(P'_j / 2)`, the power in units of the Poisson level (0 for
      pure noise when not subtracting it);
    * ``scale="frac_nu"``: :math:`\\log_{10}(f_j P'_j / \\mu)`, :math:`\\nu P_\\nu` in fractional-rms
      normalisation, :math:`(\\mathrm{rms/mean})^2`, whose peaks mark characteristic frequencies;

    followed, if ``include_rate``, by :math:`\\log_{10}\\mu` (ct/s). Subtracting the Poisson level leaves
    many bins at the floor when the noise dominates; ``floor`` (Leahy units) sets that level.

    Parameters
    ----------
    grid : SpectralGrid
        Frequency grid of the power columns of ``X``.
    scale : {"leahy", "frac_nu"}, optional
        Output scale (above).
    subtract_poisson : bool, optional
        Subtract the Poisson level 2 before taking the logarithm.
    include_rate : bool, optional
        Append :math:`\\log_{10}` of the mean count rate as a last column.
    floor : float, optional
        :math:`P_{floor}`, Leahy units, > 0.

    Attributes
    ----------
    n_features_in_ : int
        ``grid.n_freq + 1``.

    Examples
    --------
    >>> grid = SpectralGrid(freq=[1.0, 2.0], df=[1.0, 1.0], m=[1, 1])
    >>> LogSpectrum(grid).fit_transform([[2.0, 20.0, 100.0]])
    array([[0., 1., 2.]])
    """

    def __init__(
        self,
        grid: SpectralGrid,
        *,
        scale: Literal["leahy", "frac_nu"] = "leahy",
        subtract_poisson: bool = False,
        include_rate: bool = True,
        floor: float = 1e-3,
    ) -> None:
        self.grid = grid
        self.scale = scale
        self.subtract_poisson = subtract_poisson
        self.include_rate = include_rate
        self.floor = floor

    def __sklearn_tags__(self) -> Tags:
        """Leahy powers and count rates are non-negative: negative input is rejected in ``fit``."""
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> LogSpectrum:
        """Check the parameters and ``X`` against the grid.

        Parameters
        ----------
        X : array_like, shape (n, n_freq + 1)
            Leahy powers and mean count rates (:func:`~xtml.learn.inputs.spectra_to_X`).
        y : ignored

        Returns
        -------
        LogSpectrum
            ``self``.
        """
        grid = _check_grid(self.grid)
        if self.scale not in ("leahy", "frac_nu"):
            raise ValueError(f"scale must be one of ['leahy', 'frac_nu'], got {self.scale!r}")
        for name in ("subtract_poisson", "include_rate"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        self._floor = _check_positive(self.floor, "floor", "Leahy power")
        self._scale = self.scale
        self._subtract = bool(self.subtract_poisson)
        self._include_rate = bool(self.include_rate)
        X = validate_data(self, X, dtype=np.float64)
        check_spectral_X(X, grid, owner=type(self).__name__)
        width = len(str(grid.n_freq - 1))
        self._names = [f"log_power_{j:0{width}d}" for j in range(grid.n_freq)]
        if self._include_rate:
            self._names.append("log_rate")
        self._grid = grid
        return self

    def transform(self, X: ArrayLike) -> FloatArray:
        """Log-scale the spectra.

        Parameters
        ----------
        X : array_like, shape (n, n_freq + 1)
            Leahy powers and mean count rates.

        Returns
        -------
        ndarray of float64, shape (n, n_freq + 1) or (n, n_freq)
            As the class docstring; the rate column only if ``include_rate``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        power, rate = check_spectral_X(X, self._grid, owner=type(self).__name__)
        excess = np.maximum(power - 2.0 * self._subtract, self._floor)
        if self._scale == "leahy":
            out = np.log10(excess / 2.0)
        else:
            out = np.log10(excess * self._grid.freq / rate[:, None])
        if self._include_rate:
            out = np.column_stack([out, np.log10(rate)])
        return out

    def get_feature_names_out(self, input_features: ArrayLike | None = None) -> NDArray:
        """``log_power_{j}`` for each frequency bin (zero-padded index), then ``log_rate`` if included."""
        return _names_out(self, getattr(self, "_names", []), input_features)
