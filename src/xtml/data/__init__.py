"""Datasets on disk: simulation configurations, chunked resumable Zarr stores, splits, provenance."""

from xtml.data.config import ClassSpec, DatasetSpec, ObservationSpec, SimulationConfig, load_config
from xtml.data.provenance import git_revision, package_versions, provenance
from xtml.data.resources import DatasetSize, DatasetTooLargeError, check_resources, dataset_size
from xtml.data.store import (
    SPLIT_NAMES,
    IncompleteDatasetError,
    SimDataset,
    open_dataset,
    simulate_chunk,
    simulate_dataset,
    spectrum_grid,
)

__all__ = [
    "SPLIT_NAMES",
    "ClassSpec",
    "DatasetSize",
    "DatasetSpec",
    "DatasetTooLargeError",
    "IncompleteDatasetError",
    "ObservationSpec",
    "SimDataset",
    "SimulationConfig",
    "check_resources",
    "dataset_size",
    "git_revision",
    "load_config",
    "open_dataset",
    "package_versions",
    "provenance",
    "simulate_chunk",
    "simulate_dataset",
    "spectrum_grid",
]
