"""Tasks on simulated datasets: what is learned (targets), from what (the input matrix), grouped how.

* ``detect``: is there a QPO?  The label is 1 for the classes listed as positive (default: every class
  whose PSD has a Lorentzian component), 0 otherwise.
* ``state``: which variability state (the simulated class: e.g. band-limited noise + type-C QPO,
  type-B QPO, power-law red noise, white noise only).
* ``regress``: parameters such as the QPO centroid and the broadband index, optionally in ``log10``;
  spectra of classes that lack a target parameter are left out.

Every task carries the groups (the simulated observation of each spectrum) so that splits and
cross-validation keep observations whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xtml.data.store import SimDataset
from xtml.learn.config import TaskSpec
from xtml.learn.inputs import SpectralGrid, spectra_to_X
from xtml.psd import Lorentzian
from xtml.timing import PowerSpectrum

__all__ = ["TaskData", "load_task", "positive_classes"]


@dataclass(frozen=True)
class TaskData:
    """The arrays of a task.

    Attributes
    ----------
    X : ndarray, shape (n, n_freq + 1)
        Leahy powers then the mean count rate (:func:`~xtml.learn.inputs.spectra_to_X`).
    y : ndarray
        (n,) int labels (``detect``, ``state``) or (n, k) float targets (``regress``; ``log10`` if
        ``log_targets``).
    groups : ndarray of int, shape (n,)
        Simulated observation of each row.
    rows : ndarray of int, shape (n,)
        Row of each example in the dataset.
    grid : SpectralGrid
    names : tuple of str
        Class names (index = label) or target names.
    spectra : PowerSpectrum
        The same rows as spectra, for the classical reference.
    log_targets : bool
    """

    X: NDArray[np.float64]
    y: NDArray
    groups: NDArray[np.int64]
    rows: NDArray[np.int64]
    grid: SpectralGrid
    names: tuple[str, ...]
    spectra: PowerSpectrum
    log_targets: bool = False

    @property
    def is_classification(self) -> bool:
        """Whether ``y`` holds labels."""
        return self.y.ndim == 1 and np.issubdtype(self.y.dtype, np.integer)


def positive_classes(ds: SimDataset, task: TaskSpec) -> tuple[str, ...]:
    """Class names counted as "QPO present": ``task.positive`` or the classes with a Lorentzian."""
    names = ds.class_names
    if task.positive:
        unknown = [p for p in task.positive if p not in names]
        if unknown:
            raise ValueError(f"[task] positive names unknown class(es) {unknown}; dataset classes: {names}")
        return task.positive
    out = tuple(
        c.name
        for c in ds.config.classes
        if any(isinstance(comp, Lorentzian) for _, comp in c.model.components)
    )
    if not out or len(out) == len(names):
        raise ValueError(
            f"cannot tell QPO from no-QPO classes in {names}: set [task] positive = [...] explicitly"
        )
    return out


def load_task(ds: SimDataset, task: TaskSpec) -> TaskData:
    """Targets, input matrix and groups of ``task`` on a dataset (module docstring)."""
    labels = ds.array("labels").astype(np.int64)
    groups = ds.groups
    rows = np.arange(ds.n, dtype=np.int64)
    if task.kind == "detect":
        pos = positive_classes(ds, task)
        y: NDArray = np.isin(labels, [ds.class_names.index(p) for p in pos]).astype(np.int64)
        names: tuple[str, ...] = ("no QPO", "QPO")
    elif task.kind == "state":
        y, names = labels, ds.class_names
        if np.unique(labels).size < 2:
            raise ValueError(f"a state task needs at least two classes in the data; found {names}")
    else:
        unknown = [t for t in task.targets if t not in ds.param_names]
        if unknown:
            raise ValueError(f"[task] targets {unknown} are not parameters of the dataset: {ds.param_names}")
        params = ds.array("params")[:, [ds.param_names.index(t) for t in task.targets]]
        keep = np.all(np.isfinite(params), axis=1)
        if not keep.any():
            raise ValueError(f"no spectrum of the dataset has all of the targets {task.targets}")
        if task.log_targets and np.any(params[keep] <= 0):
            raise ValueError("log_targets = true needs positive targets; set [task] log_targets = false")
        rows, groups = rows[keep], groups[keep]
        y = np.log10(params[keep]) if task.log_targets else params[keep]
        names = task.targets
    spectra = ds.spectra(rows if rows.size < ds.n else None)
    X, grid = spectra_to_X(spectra)
    return TaskData(X, y, groups, rows, grid, names, spectra, task.kind == "regress" and task.log_targets)
