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

Not wired yet (issue 9, next step): ``xtml simulate/train/evaluate/sbi train`` still write their own
``record.json`` in other layouts (``learn.train``: dataset, split, models; ``sbi.run``: datasets, seconds,
calibration), which the evaluation, the reports, the scope gate and the demo read; that content moves
(e.g. to ``train.json``) when the commands adopt :func:`run_folder`. ``sbi.run`` copies the scenario to
``config.toml``, which becomes ``scenario.toml``; ``xtml simulate`` puts its store inside the run folder
(Zarr's ``mode="w"`` would wipe the lock and the record).
"""

from xtml.runs._lock import LOCK_NAME, RunLockedError
from xtml.runs._toml import to_toml
from xtml.runs.folder import CONFIG_NAME, MODEL_FOLDERS, RunExistsError, RunWriter, run_folder, verify_files
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
    "RunExistsError",
    "RunLockedError",
    "RunRecord",
    "RunStatus",
    "RunWriter",
    "compare_runs",
    "dataset_hash",
    "file_manifest",
    "file_sha256",
    "list_runs",
    "load_record",
    "run_folder",
    "show_run",
    "to_toml",
    "verify_files",
]
