"""Run records: what each run was, how it ended and what it produced, in its own folder.

A run folder, as :func:`run_folder` writes it::

    RUN/
      .xtml-run.lock   while the run is active: one run at a time per folder (pid, host, run id)
      record.json      RunRecord: kind, run id, status, times, command, resolved config, seeds,
                       versions, platform, git revision, input hashes, metrics, checks, and the
                       SHA-256 of every file (data stores as one content hash), written atomically
      config.toml      the resolved configuration
      ...              the products of the run (models/, posterior/, data.zarr/, metrics, reports)

A command wraps its work in ``with run_folder(out, "train", command=argv, config=resolved,
seeds=seeds, inputs={"data": data}) as run:`` and writes into ``run.path``; the record is "running"
from the first instant, "complete" (or "failed-check") when the block ends, "incomplete" with the
error if it raises or is interrupted.  :func:`list_runs`, :func:`show_run`, :func:`compare_runs` and
:func:`verify_files` read the records; :func:`dataset_hash` is the content hash that makes "the same
data" checkable.

Every command that makes something is a recorded run: ``xtml simulate`` (:mod:`xtml.data.simrun`, the
store is ``RUN/data.zarr``), ``xtml train`` (:func:`xtml.learn.train.train_run`), ``xtml evaluate``
(nested, ``RUN/evaluation/``) and ``xtml sbi train`` (:func:`xtml.sbi.run.train_sbi_run`).  Loaders check
the files they read against the record (:func:`check_files`) and refuse unfinished runs
(:func:`require_finished`).  :mod:`xtml.runs.reproduce` re-executes a run from its record
(``xtml reproduce``); :mod:`xtml.runs.bundle` exports a run to a checked, pickle-free ``*.xtml.zip``
(``xtml export`` / ``xtml import`` / ``xtml analyze --run model.xtml.zip``).
"""

from xtml.runs._lock import LOCK_NAME, RunLockedError
from xtml.runs._toml import to_toml
from xtml.runs.folder import (
    CONFIG_NAME,
    MODEL_FOLDERS,
    RunCompleteError,
    RunExistsError,
    RunWriter,
    TamperedRunError,
    check_files,
    require_finished,
    run_folder,
    verify_files,
)
from xtml.runs.hashing import RECORD_NAME, VOLATILE_METADATA, dataset_hash, file_manifest, file_sha256
from xtml.runs.listing import compare_runs, list_runs, show_run
from xtml.runs.record import RUN_FORMAT_VERSION, STATUSES, RunCheck, RunRecord, RunStatus, load_record

__all__ = [
    "CONFIG_NAME",
    "LOCK_NAME",
    "MODEL_FOLDERS",
    "RECORD_NAME",
    "RUN_FORMAT_VERSION",
    "STATUSES",
    "VOLATILE_METADATA",
    "RunCheck",
    "RunCompleteError",
    "RunExistsError",
    "RunLockedError",
    "RunRecord",
    "RunStatus",
    "RunWriter",
    "TamperedRunError",
    "check_files",
    "compare_runs",
    "dataset_hash",
    "file_manifest",
    "file_sha256",
    "list_runs",
    "load_record",
    "require_finished",
    "run_folder",
    "show_run",
    "to_toml",
    "verify_files",
]
