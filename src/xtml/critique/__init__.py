"""Diagnosis and scope: plots of data against models (scope gate and performance maps come later)."""

from xtml.critique.plots import plot_ratio, plot_spectra

__all__ = ["plot_ratio", "plot_spectra"]
