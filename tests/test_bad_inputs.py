"""No user error ends in a traceback, and nothing is lost (issue 18, items 5 and 6).

A corpus of bad inputs goes through the real command line (``xtml.cli.main``, in this process; a few also
through a real subprocess): configurations, event files, light curves, bundles, run folders, arguments out of
range and numeric edges (one frequency, all-zero light curves, NaN times), huge ``--n``, a full, read-only or
forbidden disk.  Each must exit with status 2 and one line on stderr that names the input and says what is
allowed, with no traceback; every run folder it touched must be complete or INCOMPLETE, or not exist when the
command promises to refuse before writing anything; interrupted runs must resume to the bytes of an
uninterrupted run.

The disk errors are simulated: these tests may run as root, for whom ``chmod`` does not stop a write, and a
real full disk would need a loop-mounted file system.  ``zarr.storage._local._put`` (the one function through
which Zarr's local store writes a file) and the run-record writer are replaced by versions that raise the
``OSError`` the kernel would (``ENOSPC``, ``EROFS``, ``EACCES``) after a given number of writes; everything
above them (xtml's handling, the CLI's message, the resumption) is the real code.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from xtml.cli import main
from xtml.runs import dataset_hash, load_record, verify_files
from xtml.runs.bundle import export_run, import_bundle

SIM = """
[observation]
dt = 0.015625
segment_bins = 64
n_segments = 2
rebin_log = 0.1

[rate]
dist = "uniform"
low = 200.0
high = 400.0

[classes.qpo]
components = { broad = "zero_lorentzian", qpo = "lorentzian" }

[classes.qpo.priors]
"broad.nu_max" = { dist = "loguniform", low = 0.5, high = 3.0 }
"broad.rms" = { dist = "uniform", low = 0.05, high = 0.15 }
"qpo.nu0" = { dist = "loguniform", low = 4.0, high = 20.0 }
"qpo.q" = { dist = "uniform", low = 5.0, high = 10.0 }
"qpo.rms" = { dist = "uniform", low = 0.1, high = 0.2 }

[classes.noise]
components = { broad = "zero_lorentzian" }

[classes.noise.priors]
"broad.nu_max" = { dist = "loguniform", low = 0.5, high = 3.0 }
"broad.rms" = { dist = "uniform", low = 0.05, high = 0.15 }

[dataset]
seed = 3
chunk_size = 20
"""

TRAIN = """
[task]
kind = "detect"
positive = ["qpo"]

[split]
seed = 2

[cv]
n_splits = 3

[models.logistic]

[reference]
test = "lrt"
null = { broad = "zero_lorentzian" }
max_spectra = 4

[evaluation]
n_boot = 10
"""

N = 60  # spectra of the fixture's dataset: three chunks of 20


def _sim(**changes: str) -> str:
    """The fixture's simulation configuration with lines replaced (``{"dt = 0.015625": "dt = 0"}``)."""
    text = SIM
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _write_events(path: Path, times: np.ndarray, gti: np.ndarray) -> Path:
    header = fits.Header()
    header["TELESCOP"], header["INSTRUME"], header["MJDREFI"], header["MJDREFF"] = (
        "NUSTAR",
        "FPMA",
        55197,
        0.0,
    )
    header["TIMESYS"] = "TT"
    events = fits.BinTableHDU.from_columns([fits.Column(name="TIME", format="D", array=times)], header=header)
    events.name = "EVENTS"
    columns = [fits.Column(name=n, format="D", array=gti[:, k]) for k, n in enumerate(("START", "STOP"))]
    g = fits.BinTableHDU.from_columns(columns, header=header)
    g.name = "GTI"
    fits.HDUList([fits.PrimaryHDU(header=header), events, g]).writeto(path, overwrite=True)
    return path


def _flip(data: bytes, position: int, mask: int = 0xFF) -> bytes:
    out = bytearray(data)
    out[position] ^= mask
    return bytes(out)


def _member_data_offset(bundle: bytes, info: zipfile.ZipInfo) -> int:
    """Where a member's compressed bytes start (after its local header, whose extra field may differ)."""
    start = info.header_offset
    name_len = int.from_bytes(bundle[start + 26 : start + 28], "little")
    extra_len = int.from_bytes(bundle[start + 28 : start + 30], "little")
    return start + 30 + name_len + extra_len


@dataclass
class World:
    """Runs and files every case reads; built once for the module (about 15 s)."""

    root: Path
    sim: Path  # a finished simulate run of SIM, N spectra: also the uninterrupted reference
    det: Path  # a finished, evaluated training run on it
    bundle: Path  # its export
    one_freq: Path  # a finished simulate run whose spectra have one frequency
    files: dict[str, Path] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("bad_inputs")
    cwd = Path.cwd()
    os.chdir(root)  # the runs are made as a user makes them: relative paths, from their folder
    try:
        Path("sim.toml").write_text(SIM)
        Path("train.toml").write_text(TRAIN)
        assert main(["simulate", "sim.toml", "--n", str(N), "--out", "runs/sim", "--no-progress"]) == 0
        assert main(["train", "train.toml", "--data", "runs/sim", "--out", "runs/det", "--no-progress"]) == 0
        assert main(["evaluate", "runs/det", "--no-plots"]) in (0, 1)
        Path("one.toml").write_text(_sim(**{"rebin_log = 0.1": "rebin_linear = 31"}))
        assert main(["simulate", "one.toml", "--n", str(N), "--out", "runs/one", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    w = World(root, root / "runs/sim", root / "runs/det", root / "det.xtml.zip", root / "runs/one")
    export_run(w.det, w.bundle, model_card=False)
    f = root / "files"
    f.mkdir()
    rng = np.random.default_rng(7)
    t = np.arange(4096) / 64

    def text(name: str, lines: list[str] | str) -> None:
        w.files[name] = f / name
        (f / name).write_text(lines if isinstance(lines, str) else "\n".join(lines) + "\n")

    text("zero.txt", [f"{a} 0" for a in t])
    text("allnan.txt", [f"{a} nan" for a in t])
    text("allinf.txt", [f"{a} inf" for a in t])
    text("constant.txt", [f"{a} 5" for a in t])
    text("gappy.txt", [f"{a} {'nan' if i % 7 == 0 else 5}" for i, a in enumerate(t)])
    text("negative.txt", [f"{a} -3" for a in t])
    text("two_rows.txt", ["0 1", "1 2"])
    text("empty.txt", "")
    text("words.txt", ["hello world", "foo bar"])
    text("decreasing.txt", [f"{a} 5" for a in t[::-1]])
    for name in ("lc_dir.txt", "events_dir.evt", "config_dir.toml", "bundle_dir.zip", "not_a_run"):
        (f / name).mkdir()
        w.files[name] = f / name
    w.files["binary.bin"] = f / "binary.bin"
    (f / "binary.bin").write_bytes(b"\xda\x00\xff" + rng.bytes(997))
    w.files["zero.evt"] = f / "zero.evt"
    (f / "zero.evt").write_bytes(b"")
    w.files["good.evt"] = _write_events(
        f / "good.evt", np.sort(rng.uniform(0, 64, 20000)), np.array([[0, 64.0]])
    )
    w.files["noevents.evt"] = _write_events(f / "noevents.evt", np.zeros(0), np.array([[0, 100.0]]))
    w.files["nan.evt"] = _write_events(f / "nan.evt", np.array([1.0, np.nan, 3.0]), np.array([[0, 100.0]]))
    w.files["truncated.evt"] = f / "truncated.evt"
    (f / "truncated.evt").write_bytes(w.files["good.evt"].read_bytes()[:30000])
    w.files["latin1.toml"] = f / "latin1.toml"
    (f / "latin1.toml").write_bytes('title = "café"\n'.encode("latin-1"))
    w.files["plain.txt"] = f / "plain.txt"
    (f / "plain.txt").write_text("my notes, not a bundle\n")
    # bundles damaged in transit: a byte and a bit of a member's compressed data, the directory's CRC
    raw = w.bundle.read_bytes()
    infos = zipfile.ZipFile(w.bundle).infolist()
    big = max(infos, key=lambda i: i.compress_size)
    w.files["big_member"] = Path(big.filename)
    start = _member_data_offset(raw, big)
    for name, data in {
        "byte.zip": _flip(raw, start + big.compress_size // 2),
        "bit.zip": _flip(raw, start + big.compress_size // 3, 0x01),
        "crc.zip": _flip(raw, raw.find(b"PK\x01\x02") + 16),  # CRC-32 of the first member, BUNDLE.json
        "truncated.zip": raw[: len(raw) // 2],
    }.items():
        w.files[name] = f / name
        (f / name).write_bytes(data)
    # run folders: not finished, modified after it finished, damaged records
    for name in ("incomplete", "tampered"):
        shutil.copytree(w.det, root / "runs" / name)
    record = root / "runs/incomplete/record.json"
    record.write_text(record.read_text().replace('"status": "complete"', '"status": "incomplete"'))
    (root / "runs/tampered/scope.json").write_text('{"changed": true}')
    import_bundle(w.bundle, root / "runs" / "imported")
    for name, content in (("binary_record", b"\x89PNG\r\n\x1a\n\x00"), ("json_garbage", b"{not json")):
        (root / "runs" / name).mkdir()
        (root / "runs" / name / "record.json").write_bytes(content)
    (root / "configs").mkdir()
    return w


def _config(w: World, name: str, text: str) -> str:
    path = w.root / "configs" / name
    path.write_text(text)
    return str(path)


@dataclass(frozen=True)
class Case:
    """One bad input: the argv (built from the world), what the error line must say, the run folders it
    touches (``new`` ones must not exist afterwards: refused before anything was written)."""

    argv: Callable[[World], list[str]]
    says: tuple[str, ...]
    new: tuple[str, ...] = ()  # run folders (relative to the world's root) that must not be created
    kept: tuple[str, ...] = ()  # finished run folders that must stay complete, every file as recorded


def _p(w: World, name: str) -> str:
    return str(w.files[name])


CASES: dict[str, Case] = {
    # --- configurations
    "binary config": Case(
        lambda w: ["simulate", _p(w, "binary.bin"), "--n", "5", "--out", str(w.root / "o/a")],
        ("binary.bin", "is not a TOML file", "not UTF-8"),
        new=("o/a",),
    ),
    "latin-1 config": Case(
        lambda w: ["simulate", _p(w, "latin1.toml"), "--n", "5", "--out", str(w.root / "o/a")],
        ("latin1.toml", "is not a TOML file", "byte 0xe9"),
        new=("o/a",),
    ),
    "directory as config": Case(
        lambda w: ["simulate", _p(w, "config_dir.toml"), "--n", "5", "--out", str(w.root / "o/a")],
        ("config_dir.toml", "is a directory, not a file"),
        new=("o/a",),
    ),
    "missing config": Case(
        lambda w: ["simulate", str(w.root / "nowhere.toml"), "--n", "5", "--out", str(w.root / "o/a")],
        ("nowhere.toml", "does not exist"),
        new=("o/a",),
    ),
    "invalid TOML": Case(
        lambda w: ["simulate", _config(w, "syntax.toml", SIM + "\n[[[x\n"), "--n", "5", "--out", "o"],
        ("syntax.toml", "is not a TOML file", "line "),
    ),
    "empty config": Case(
        lambda w: ["simulate", _config(w, "empty.toml", ""), "--n", "5", "--out", "o"],
        ("empty.toml", "needs a [observation] table"),
    ),
    "unknown table": Case(
        lambda w: ["simulate", _config(w, "table.toml", SIM + "\n[foo]\nx = 1\n"), "--n", "5", "--out", "o"],
        ("table.toml", "unknown key(s) ['foo']", "valid keys: observation"),
    ),
    "dt = 0": Case(
        lambda w: [
            "simulate",
            _config(w, "dt0.toml", _sim(**{"dt = 0.015625": "dt = 0"})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("dt0.toml", "dt must be > 0"),
    ),
    "dt a word": Case(
        lambda w: [
            "simulate",
            _config(w, "dts.toml", _sim(**{"dt = 0.015625": 'dt = "fast"'})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("dts.toml", "dt must be a finite number", "'fast'"),
    ),
    "segment_bins = 2": Case(
        lambda w: [
            "simulate",
            _config(w, "seg.toml", _sim(**{"segment_bins = 64": "segment_bins = 2"})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("seg.toml", "segment_bins must be an integer >= 4, got 2"),
    ),
    "m = 0: rebin_linear = 0": Case(
        lambda w: [
            "simulate",
            _config(w, "lin0.toml", _sim(**{"rebin_log = 0.1": "rebin_linear = 0"})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("lin0.toml", "rebin_linear must be an integer >= 1, got 0"),
    ),
    "m = 0: n_segments = 0": Case(
        lambda w: [
            "simulate",
            _config(w, "m0.toml", _sim(**{"n_segments = 2": "n_segments = 0"})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("m0.toml", "n_segments must be an integer >= 1, got 0"),
    ),
    "rebin_linear beyond the grid": Case(
        lambda w: [
            "simulate",
            _config(w, "lin.toml", _sim(**{"rebin_log = 0.1": "rebin_linear = 1000"})),
            "--n",
            "5",
            "--out",
            str(w.root / "o/lin"),
        ],
        ("lin.toml", "rebin_linear = 1000", "[1, 31]"),
        new=("o/lin",),
    ),
    "negative rebin_log": Case(
        lambda w: [
            "simulate",
            _config(w, "rl.toml", _sim(**{"rebin_log = 0.1": "rebin_log = -1"})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("rl.toml", "rebin_log must be >= 0"),
    ),
    "unknown norm": Case(
        lambda w: [
            "simulate",
            _config(w, "norm.toml", _sim(**{"rebin_log = 0.1": 'rebin_log = 0.1\nnorm = "fancy"'})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("norm.toml", "'fancy'", "leahy, frac, abs"),
    ),
    "rate prior low > high": Case(
        lambda w: [
            "simulate",
            _config(w, "rate.toml", _sim(**{"low = 200.0\nhigh = 400.0": "low = 400.0\nhigh = 200.0"})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("rate.toml", "'rate'", "low < high"),
    ),
    "NaN in a prior": Case(
        lambda w: [
            "simulate",
            _config(w, "nan.toml", _sim(**{"low = 200.0": "low = nan"})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("nan.toml", "must be finite", "nan"),
    ),
    "unknown prior distribution": Case(
        lambda w: [
            "simulate",
            _config(w, "dist.toml", _sim(**{'dist = "uniform"\nlow = 200.0': 'dist = "gauss"\nlow = 200.0'})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("dist.toml", "unknown dist 'gauss'", "valid: uniform, loguniform, fixed"),
    ),
    "unknown PSD component": Case(
        lambda w: [
            "simulate",
            _config(w, "comp.toml", _sim(**{'qpo = "lorentzian" }': 'qpo = "gaussian" }'})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("comp.toml", "'gaussian'", "valid kinds: bending_powerlaw"),
    ),
    "prior of an unknown parameter": Case(
        lambda w: [
            "simulate",
            _config(w, "par.toml", _sim(**{'"qpo.q" =': '"qpo.zz" ='})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("par.toml", "unknown: ['qpo.zz']", "valid parameters: broad.nu_max"),
    ),
    "QPO above the Nyquist frequency": Case(
        lambda w: [
            "simulate",
            _config(w, "nyq.toml", _sim(**{"low = 4.0, high = 20.0": "low = 40.0, high = 200.0"})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("nyq.toml", "qpo.nu0", "Nyquist frequency 32.0 Hz"),
    ),
    "class weight 0": Case(
        lambda w: [
            "simulate",
            _config(w, "w.toml", _sim(**{"[classes.noise]\n": "[classes.noise]\nweight = 0\n"})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("w.toml", "weight must be > 0"),
    ),
    "split fractions not summing to 1": Case(
        lambda w: [
            "simulate",
            _config(
                w,
                "split.toml",
                _sim(**{"chunk_size = 20": "chunk_size = 20\nsplit = { train = 0.9, test = 0.9 }"}),
            ),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("split.toml", "sum to 1"),
    ),
    "integer power dtype": Case(
        lambda w: [
            "simulate",
            _config(w, "dtype.toml", _sim(**{"chunk_size = 20": "chunk_size = 20\npower_dtype = 'int8'"})),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("dtype.toml", "'float32' or 'float64'", "'int8'"),
    ),
    "no detector module": Case(
        lambda w: [
            "simulate",
            _config(w, "mod.toml", SIM + "\n[detector]\nn_modules = 0\n"),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("mod.toml", "n_modules must be an integer >= 1, got 0"),
    ),
    "negative dead time": Case(
        lambda w: [
            "simulate",
            _config(
                w, "dead.toml", SIM + "\n[detector]\nn_modules = 2\n[detector.dead_time]\nvalue = -1.0\n"
            ),
            "--n",
            "5",
            "--out",
            "o",
        ],
        ("dead.toml", "dead time must be finite and >= 0"),
    ),
    "binary training config": Case(
        lambda w: ["train", _p(w, "binary.bin"), "--data", str(w.sim), "--out", str(w.root / "o/t")],
        ("binary.bin", "is not a TOML file"),
        new=("o/t",),
    ),
    "directory as training config": Case(
        lambda w: ["train", _p(w, "config_dir.toml"), "--data", str(w.sim), "--out", str(w.root / "o/t")],
        ("config_dir.toml", "is a directory"),
        new=("o/t",),
    ),
    "simulation config given to train": Case(
        lambda w: ["train", str(w.root / "sim.toml"), "--data", str(w.sim), "--out", str(w.root / "o/t")],
        ("sim.toml", "unknown key(s)", "valid keys: task"),
        new=("o/t",),
    ),
    "binary SBI scenario": Case(
        lambda w: ["sbi", "train", _p(w, "binary.bin"), "--out", str(w.root / "o/s")],
        ("binary.bin", "is not a TOML file"),
        new=("o/s",),
    ),
    "simulation config given to sbi train": Case(
        lambda w: ["sbi", "train", str(w.root / "sim.toml"), "--out", str(w.root / "o/s")],
        ("sim.toml", "needs an [sbi] table"),
        new=("o/s",),
    ),
    # --- xtml simulate: sizes and run folders
    "--n 0": Case(
        lambda w: ["simulate", str(w.root / "sim.toml"), "--n", "0", "--out", str(w.root / "o/n0")],
        ("n must be an integer >= 1, got 0",),
        new=("o/n0",),
    ),
    "--n beyond the disk": Case(
        lambda w: ["simulate", str(w.root / "sim.toml"), "--n", str(10**13), "--out", str(w.root / "o/huge")],
        ("n = 10000000000000 spectra need about", "on disk", "is free", "nothing was written"),
        new=("o/huge",),
    ),
    "a chunk beyond the memory": Case(
        lambda w: [
            "simulate",
            str(w.root / "sim.toml"),
            "--n",
            "100",
            "--chunk-size",
            str(10**12),
            "--out",
            str(w.root / "o/chunk"),
        ],
        ("chunk_size = 1000000000000", "of memory", "is available", "use a smaller chunk_size"),
        new=("o/chunk",),
    ),
    "light curves beyond the memory": Case(
        lambda w: [
            "simulate",
            _config(w, "long.toml", _sim(**{"n_segments = 2": "n_segments = 100000000000"})),
            "--n",
            "20",
            "--out",
            str(w.root / "o/long"),
        ],
        ("one observation alone needs about", "n_segments = 100000000000"),
        new=("o/long",),
    ),
    "--chunk-size 0": Case(
        lambda w: [
            "simulate",
            str(w.root / "sim.toml"),
            "--n",
            "5",
            "--chunk-size",
            "0",
            "--out",
            str(w.root / "o/c"),
        ],
        ("chunk_size must be an integer >= 1, got 0",),
        new=("o/c",),
    ),
    "negative --seed": Case(
        lambda w: [
            "simulate",
            str(w.root / "sim.toml"),
            "--n",
            "5",
            "--seed",
            "-1",
            "--out",
            str(w.root / "o/s"),
        ],
        ("seed must be an integer >= 0, got -1",),
        new=("o/s",),
    ),
    "--n not a multiple of spectra_per_observation": Case(
        lambda w: [
            "simulate",
            _config(
                w, "spo.toml", _sim(**{"chunk_size = 20": "chunk_size = 21\nspectra_per_observation = 3"})
            ),
            "--n",
            "40",
            "--out",
            str(w.root / "o/spo"),
        ],
        ("n (40)", "multiples of [dataset] spectra_per_observation = 3"),
        new=("o/spo",),
    ),
    "--out is a file": Case(
        lambda w: ["simulate", str(w.root / "sim.toml"), "--n", "5", "--out", _p(w, "plain.txt")],
        ("plain.txt", "exists and is not a folder"),
    ),
    "--out holds someone's files": Case(
        lambda w: ["simulate", str(w.root / "sim.toml"), "--n", "5", "--out", str(w.root / "files")],
        ("files", "holds no run record", "choose a new or empty folder"),
    ),
    "--out holds this run with another seed": Case(
        lambda w: ["simulate", str(w.root / "sim.toml"), "--n", str(N), "--seed", "4", "--out", str(w.sim)],
        ("runs/sim", "already holds a finished simulate run", "seed: 3 -> 4", "--overwrite"),
        kept=("runs/sim",),
    ),
    "--out holds a training run": Case(
        lambda w: ["simulate", str(w.root / "sim.toml"), "--n", str(N), "--out", str(w.det)],
        ("runs/det", "already holds a finished train run", "kind: train -> simulate"),
        kept=("runs/det",),
    ),
    "--workers 0": Case(
        lambda w: [
            "simulate",
            str(w.root / "sim.toml"),
            "--n",
            "5",
            "--workers",
            "0",
            "--out",
            str(w.root / "o/w"),
        ],
        ("--workers", "must be an integer >= 1, got 0"),
        new=("o/w",),
    ),
    "--n not a number": Case(
        lambda w: ["simulate", str(w.root / "sim.toml"), "--n", "many", "--out", str(w.root / "o/w")],
        ("--n", "invalid int value: 'many'"),
        new=("o/w",),
    ),
    # --- event files and xtml fit
    "missing event file": Case(
        lambda w: ["fit", str(w.root / "nowhere.evt"), "--model", "broad=zero_lorentzian"],
        ("nowhere.evt", "does not exist"),
    ),
    "binary event file": Case(
        lambda w: ["fit", _p(w, "binary.bin"), "--model", "broad=zero_lorentzian"],
        ("binary.bin", "not a readable FITS file"),
    ),
    "empty event file": Case(
        lambda w: ["fit", _p(w, "zero.evt"), "--model", "broad=zero_lorentzian"],
        ("zero.evt", "Empty or corrupt FITS file"),
    ),
    "event file without events": Case(
        lambda w: ["fit", _p(w, "noevents.evt"), "--model", "broad=zero_lorentzian"],
        ("noevents.evt", "holds no events"),
    ),
    "NaN event times": Case(
        lambda w: ["fit", _p(w, "nan.evt"), "--model", "broad=zero_lorentzian"],
        ("nan.evt", "not finite"),
    ),
    "truncated event file": Case(
        lambda w: ["fit", _p(w, "truncated.evt"), "--model", "broad=zero_lorentzian"],
        ("truncated.evt", "corrupt or truncated FITS file"),
    ),
    "--dt 0": Case(
        lambda w: ["fit", _p(w, "good.evt"), "--model", "broad=zero_lorentzian", "--dt", "0"],
        ("dt must be a finite number > 0", "got 0.0"),
    ),
    "segments longer than the GTIs": Case(
        lambda w: ["fit", _p(w, "good.evt"), "--model", "broad=zero_lorentzian", "--segment-size", "1000"],
        ("the segment length 1000 s is longer than every GTI", "the longest GTI is 64 s"),
    ),
    "--segment-size 0": Case(
        lambda w: ["fit", _p(w, "good.evt"), "--model", "broad=zero_lorentzian", "--segment-size", "0"],
        ("segment_size must be a finite number > 0",),
    ),
    "negative --rebin-log": Case(
        lambda w: ["fit", _p(w, "good.evt"), "--model", "broad=zero_lorentzian", "--rebin-log", "-1"],
        ("rebin_log_f must be a finite number >= 0", "-1.0"),
    ),
    "negative --dead-time": Case(
        lambda w: ["fit", _p(w, "good.evt"), "--model", "broad=zero_lorentzian", "--dead-time", "-1"],
        ("dead_time must be a finite number >= 0",),
    ),
    "unknown model component": Case(
        lambda w: ["fit", _p(w, "good.evt"), "--model", "broad=gaussian"],
        ("'gaussian'", "valid kinds: bending_powerlaw"),
    ),
    "malformed --model": Case(
        lambda w: ["fit", _p(w, "good.evt"), "--model", "broad"],
        ("--model needs name=kind pairs", "'broad'"),
    ),
    "a component named twice": Case(
        lambda w: ["fit", str(w.sim), "--model", "broad=zero_lorentzian,broad=lorentzian"],
        ("--model names each component once", "'broad' appears twice"),
    ),
    "--index out of range": Case(
        lambda w: ["fit", str(w.sim), "--model", "broad=zero_lorentzian", "--index", "60"],
        ("--index must be in [0, 60)", "got 60"),
    ),
    "one frequency": Case(
        lambda w: ["fit", str(w.one_freq), "--model", "broad=zero_lorentzian"],
        ("runs/one", "1 frequency bin(s)", "more frequencies than parameters"),
    ),
    "FAD spectrum of a dataset without one": Case(
        lambda w: ["fit", str(w.sim), "--model", "broad=zero_lorentzian", "--spectrum", "power_fad"],
        ("no 'power_fad' spectra", "stored: power"),
    ),
    "--plot into a missing folder": Case(
        lambda w: [
            "fit",
            str(w.sim),
            "--model",
            "broad=zero_lorentzian",
            "--plot",
            str(w.root / "no/fit.png"),
        ],
        ("--plot", "fit.png", "does not exist"),
    ),
    # --- light curves and event files through xtml analyze (nothing could be analysed: status 2)
    "all-zero light curve": Case(
        lambda w: ["analyze", _p(w, "zero.txt"), "--run", str(w.det)],
        ("zero.txt", "zero total counts"),
    ),
    "all-NaN light curve": Case(
        lambda w: ["analyze", _p(w, "allnan.txt"), "--run", str(w.det)],
        ("allnan.txt", "no usable bin", "finite value"),
    ),
    "all-inf light curve": Case(
        lambda w: ["analyze", _p(w, "allinf.txt"), "--run", str(w.det)],
        ("allinf.txt", "no usable bin", "finite value"),
    ),
    "constant light curve": Case(
        lambda w: ["analyze", _p(w, "constant.txt"), "--run", str(w.det)],
        ("constant.txt", "power must be finite and > 0"),
    ),
    "NaN gaps shorter than a segment": Case(
        lambda w: ["analyze", _p(w, "gappy.txt"), "--run", str(w.det)],
        ("gappy.txt", "longer than every GTI", "use shorter segments"),
    ),
    "negative counts": Case(
        lambda w: ["analyze", _p(w, "negative.txt"), "--run", str(w.det)],
        ("negative.txt", "negative", "needs the detected counts"),
    ),
    "light curve of two rows": Case(
        lambda w: ["analyze", _p(w, "two_rows.txt"), "--run", str(w.det)],
        ("two_rows.txt", "at least 3 rows", "got 2 rows"),
    ),
    "empty light curve": Case(
        lambda w: ["analyze", _p(w, "empty.txt"), "--run", str(w.det)],
        ("empty.txt", "2 or 3 numeric columns"),
    ),
    "words instead of numbers": Case(
        lambda w: ["analyze", _p(w, "words.txt"), "--run", str(w.det)],
        ("words.txt", "numeric text columns (time, counts[, error])"),
    ),
    "decreasing times": Case(
        lambda w: ["analyze", _p(w, "decreasing.txt"), "--run", str(w.det)],
        ("decreasing.txt", "times must increase"),
    ),
    "directory as a light curve": Case(
        lambda w: ["analyze", _p(w, "lc_dir.txt"), "--run", str(w.det)],
        ("lc_dir.txt", "is a directory, not a file"),
    ),
    "directory as an event file": Case(
        lambda w: ["analyze", _p(w, "events_dir.evt"), "--run", str(w.det)],
        ("events_dir.evt", "is a directory, not a file"),
    ),
    "missing light curve": Case(
        lambda w: ["analyze", str(w.root / "nowhere.txt"), "--run", str(w.det)],
        ("nowhere.txt", "does not exist"),
    ),
    "--energy LO > HI": Case(
        lambda w: ["analyze", _p(w, "good.evt"), "--run", str(w.det), "--energy", "10", "3"],
        ("energy_range", "0 <= low < high", "(10.0, 3.0)"),
    ),
    "--n-samples 0": Case(
        lambda w: ["analyze", _p(w, "good.evt"), "--run", str(w.det), "--n-samples", "0"],
        ("n_samples", "integer >= 2, got 0"),
    ),
    "missing --run": Case(
        lambda w: ["analyze", _p(w, "good.evt"), "--run", str(w.root / "runs/nowhere")],
        ("runs/nowhere", "does not exist"),
    ),
    "a dataset as --run": Case(
        lambda w: ["analyze", _p(w, "good.evt"), "--run", str(w.sim)],
        ("runs/sim", "is neither a finished `xtml sbi train` run", "nor an `xtml train` run"),
    ),
    "a pattern matching nothing": Case(
        lambda w: ["analyze", str(w.root / "*.nothing"), "--run", str(w.det)],
        ("*.nothing", "matches no file"),
    ),
    # --- bundles
    "bundle with a flipped byte": Case(
        lambda w: ["import", _p(w, "byte.zip"), "--to", str(w.root / "o/imp")],
        ("byte.zip", "member '", "is damaged", "nothing was unpacked"),
        new=("o/imp",),
    ),
    "bundle with a flipped bit": Case(
        lambda w: ["import", _p(w, "bit.zip"), "--to", str(w.root / "o/imp")],
        ("bit.zip", "member '", "is damaged"),
        new=("o/imp",),
    ),
    "bundle with a wrong CRC": Case(
        lambda w: ["import", _p(w, "crc.zip"), "--to", str(w.root / "o/imp")],
        ("crc.zip", "member 'BUNDLE.json' is damaged", "Bad CRC-32"),
        new=("o/imp",),
    ),
    "truncated bundle": Case(
        lambda w: ["import", _p(w, "truncated.zip"), "--to", str(w.root / "o/imp")],
        ("truncated.zip", "not an xtml bundle, or a damaged one", "zip file `xtml export` writes"),
        new=("o/imp",),
    ),
    "directory as a bundle": Case(
        lambda w: ["import", _p(w, "bundle_dir.zip"), "--to", str(w.root / "o/imp")],
        ("bundle_dir.zip", "is a directory, not a file"),
        new=("o/imp",),
    ),
    "missing bundle": Case(
        lambda w: ["import", str(w.root / "nowhere.zip"), "--to", str(w.root / "o/imp")],
        ("nowhere.zip", "does not exist"),
        new=("o/imp",),
    ),
    "import into a file": Case(
        lambda w: ["import", str(w.bundle), "--to", _p(w, "plain.txt")],
        ("plain.txt", "is a file, not a folder"),
    ),
    "analyze with a damaged bundle": Case(
        lambda w: ["analyze", _p(w, "good.evt"), "--run", _p(w, "byte.zip")],
        ("byte.zip", "is damaged"),
    ),
    "sbi infer with a damaged bundle": Case(
        lambda w: ["sbi", "infer", _p(w, "bit.zip"), str(w.sim)],
        ("bit.zip", "is damaged"),
    ),
    "export to a directory": Case(
        lambda w: ["export", str(w.det), "--out", _p(w, "bundle_dir.zip")],
        ("bundle_dir.zip", "is a directory", "give a file name"),
    ),
    "export over a file that is not a bundle": Case(
        lambda w: ["export", str(w.det), "--out", _p(w, "plain.txt")],
        ("plain.txt", "is not an xtml bundle", "refusing to replace it"),
    ),
    "export a run without a model": Case(
        lambda w: ["export", str(w.sim), "--out", str(w.root / "o/sim.zip")],
        ("runs/sim", "without a model", "only training and SBI runs"),
    ),
    # --- run folders
    "runs show: no such folder": Case(
        lambda w: ["runs", "show", str(w.root / "runs/nowhere")],
        ("runs/nowhere", "does not exist"),
    ),
    "runs show: a file": Case(
        lambda w: ["runs", "show", _p(w, "plain.txt")],
        ("plain.txt", "is a file, not a folder"),
    ),
    "runs show: a folder without record": Case(
        lambda w: ["runs", "show", _p(w, "not_a_run")],
        ("not_a_run", "has no record.json"),
    ),
    "runs show: a binary record": Case(
        lambda w: ["runs", "show", str(w.root / "runs/binary_record")],
        ("binary_record/record.json", "not UTF-8", "the JSON that xtml writes"),
    ),
    "runs show: a record that is not JSON": Case(
        lambda w: ["runs", "show", str(w.root / "runs/json_garbage")],
        ("json_garbage/record.json", "not JSON"),
    ),
    "runs verify: an unfinished run": Case(
        lambda w: ["runs", "verify", str(w.root / "runs/incomplete")],
        ("runs/incomplete", "did not finish (status incomplete)"),
    ),
    "report of an unfinished run": Case(
        lambda w: ["report", str(w.root / "runs/incomplete")],
        ("runs/incomplete", "did not finish", "Run it again"),
    ),
    "report of a modified run": Case(
        lambda w: ["report", str(w.root / "runs/tampered")],
        ("tampered/scope.json", "does not match the hash", "refusing to load it"),
    ),
    "report of an imported run": Case(
        lambda w: ["report", str(w.root / "runs/imported")],
        ("runs/imported", "was imported from a bundle", "make the report where the run was trained"),
    ),
    "report --max-points 0": Case(
        lambda w: ["report", str(w.det), "--max-points", "0"],
        ("--max-points", "must be an integer >= 1, got 0"),
    ),
    "evaluate a file": Case(
        lambda w: ["evaluate", _p(w, "plain.txt")],
        ("plain.txt", "is a file, not a folder"),
    ),
    "export an unfinished run": Case(
        lambda w: ["export", str(w.root / "runs/incomplete"), "--out", str(w.root / "o/x.zip")],
        ("runs/incomplete", "did not finish"),
    ),
    "reproduce with a negative tolerance": Case(
        lambda w: ["reproduce", str(w.sim), "--rtol", "-1", "--out", str(w.root / "o/rep")],
        ("rtol must be a finite number >= 0", "-1.0"),
        new=("o/rep",),
    ),
    "train on a missing dataset": Case(
        lambda w: [
            "train",
            str(w.root / "train.toml"),
            "--data",
            str(w.root / "nowhere"),
            "--out",
            str(w.root / "o/t"),
        ],
        ("nowhere", "does not exist"),
        new=("o/t",),
    ),
    "train on a folder that is not a dataset": Case(
        lambda w: [
            "train",
            str(w.root / "train.toml"),
            "--data",
            _p(w, "not_a_run"),
            "--out",
            str(w.root / "o/t"),
        ],
        ("not_a_run", "is not an xtml dataset"),
        new=("o/t",),
    ),
    "train on one-frequency spectra": Case(
        lambda w: [
            "train",
            str(w.root / "train.toml"),
            "--data",
            str(w.one_freq),
            "--out",
            str(w.root / "o/t1"),
        ],
        ("n_freq >= 2", "got 1"),
    ),
}


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    finally:
        sys.stdout, sys.stderr = saved
    return int(code), out.getvalue(), err.getvalue()


def _assert_one_line_error(code: int, out: str, err: str, says: tuple[str, ...]) -> str:
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("xtml "), line
    assert ": error: " in line, line
    for text in says:
        assert text in line, (text, line)
    return line


def _assert_runs_sound(w: World, folders: list[Path]) -> None:
    """Every run folder is finished or INCOMPLETE (a load_record away from being resumed)."""
    for folder in folders:
        if folder.exists() and (folder / "record.json").is_file():
            assert load_record(folder).status in ("complete", "failed-check", "incomplete"), folder


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_exit_2(world: World, name: str) -> None:
    case = CASES[name]
    before = {p: sorted(q.name for q in p.iterdir()) for p in (world.root / "runs").iterdir() if p.is_dir()}
    code, out, err = _run(case.argv(world))
    _assert_one_line_error(code, out, err, case.says)
    for rel in case.new:
        assert not (world.root / rel).exists(), f"{rel} was written by a refused command"
    for rel in case.kept:
        assert load_record(world.root / rel).status == "complete"
        assert verify_files(world.root / rel) == []
    # the fixture's runs are untouched, and every run folder anywhere is finished or INCOMPLETE
    after = {p: sorted(q.name for q in p.iterdir()) for p in (world.root / "runs").iterdir() if p.is_dir()}
    assert after == before
    _assert_runs_sound(
        world, [p for p in (world.root / "o").rglob("*") if p.is_dir()] if (world.root / "o").is_dir() else []
    )
    assert (world.root / "files" / "plain.txt").read_text() == "my notes, not a bundle\n"


def test_a_failed_training_run_is_left_incomplete(world: World) -> None:
    """A run that stops on bad data keeps an INCOMPLETE record (resumable), never a half-finished one."""
    out = world.root / "o" / "t1"
    _run(CASES["train on one-frequency spectra"].argv(world))
    record = load_record(out)
    assert record.status == "incomplete"
    assert "n_freq >= 2" in record.error


# --- full, read-only and forbidden disks ------------------------------------------------------------------


def _failing_writes(
    monkeypatch: pytest.MonkeyPatch, after: int, error: int, *, records: bool = False
) -> None:
    """Zarr's writes (and, with ``records``, run-record writes after the first) fail after ``after`` writes
    with the OSError of ``error`` (see the module docstring)."""
    import zarr.storage._local as local

    real_put = local._put
    calls = {"zarr": 0}

    def put(path: Path, value: object, exclusive: bool = False) -> int:
        calls["zarr"] += 1
        if calls["zarr"] > after:
            raise OSError(error, os.strerror(error))  # as write() raises it: no file name
        return real_put(path, value, exclusive=exclusive)

    monkeypatch.setattr(local, "_put", put)
    if records:
        import xtml.runs.folder as folder

        real_record = folder.write_record
        seen = {"n": 0}

        def write_record(path: Path, record: object) -> None:
            seen["n"] += 1
            if seen["n"] > 1:  # the first, "running", gets through; the end of the run cannot be written
                raise OSError(error, os.strerror(error), str(path / "record.json.tmp"))
            real_record(path, record)

        monkeypatch.setattr(folder, "write_record", write_record)


@pytest.mark.parametrize(
    ("after", "error", "records", "says"),
    [
        (2, errno.ENOSPC, False, ("cannot write", "data.zarr", "No space left on device")),  # creating
        (40, errno.ENOSPC, True, ("cannot write", "data.zarr (chunk", "No space left on device")),
        (40, errno.EROFS, False, ("cannot write", "data.zarr (chunk", "Read-only file system")),
        (30, errno.EACCES, False, ("cannot access", "data.zarr (chunk", "Permission denied")),
    ],
    ids=["full while creating", "full mid-run, record too", "read-only mid-run", "permission denied"],
)
def test_a_disk_error_is_one_line_and_the_run_resumes_to_the_same_bytes(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    after: int,
    error: int,
    records: bool,
    says: tuple[str, ...],
) -> None:
    out = world.root / "o" / f"disk-{after}-{error}-{records}"
    argv = ["simulate", str(world.root / "sim.toml"), "--n", str(N), "--out", str(out), "--no-progress"]
    with monkeypatch.context() as m:
        _failing_writes(m, after, error, records=records)
        code, stdout, err = _run(argv)
    _assert_one_line_error(code, stdout, err, says)
    assert load_record(out).status == "incomplete"  # a dead "running" record reads as incomplete too
    code, stdout, err = _run(argv)  # the same command, on a disk that works again
    assert code == 0, err
    assert load_record(out).status == "complete"
    assert dataset_hash(out / "data.zarr") == dataset_hash(world.sim / "data.zarr")  # uninterrupted bytes


def test_a_run_folder_that_cannot_be_made_leaves_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = world.root / "o" / "forbidden" / "run"

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, out_text, err = _run(["simulate", str(world.root / "sim.toml"), "--n", "5", "--out", str(out)])
    monkeypatch.undo()
    _assert_one_line_error(code, out_text, err, ("cannot access", "forbidden/run", "Permission denied"))
    assert not out.exists()


# --- real processes: nothing reaches stderr but the one line ----------------------------------------------


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            lambda w: ["simulate", _p(w, "binary.bin"), "--n", "5", "--out", str(w.root / "o/p")],
            "not a TOML file",
        ),
        (lambda w: ["import", _p(w, "byte.zip"), "--to", str(w.root / "o/p")], "is damaged"),
        (
            lambda w: [
                "simulate",
                str(w.root / "sim.toml"),
                "--n",
                str(10**13),
                "--out",
                str(w.root / "o/p"),
            ],
            "on disk",
        ),
        (lambda w: ["analyze", _p(w, "events_dir.evt"), "--run", str(w.bundle)], "is a directory"),
    ],
    ids=["binary config", "damaged bundle", "huge --n", "directory as event file"],
)
def test_no_traceback_reaches_a_real_terminal(
    world: World, argv: Callable[[World], list[str]], says: str
) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "xtml.cli", *argv(world)], capture_output=True, text=True, env=env, timeout=120
    )
    _assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, (says,))
    assert not (world.root / "o" / "p").exists()


# --- item 6: idempotent re-runs, no absolute paths, progress bars on a terminal only ----------------------


def test_a_finished_run_asked_for_again_is_already_complete(world: World) -> None:
    """The same command on a finished run says "already complete" and exits 0 (the docs promise that the
    same command completes a run); the run is not touched. A modified run is refused naming the file."""
    sim = world.root / "o" / "again" / "sim"
    shutil.copytree(world.sim, sim)
    before = load_record(sim)
    argv = ["simulate", str(world.root / "sim.toml"), "--n", str(N), "--out", str(sim), "--no-progress"]
    code, out, err = _run(argv)
    assert code == 0, err
    assert out.strip() == (
        f"{sim}: already complete (simulate run {before.run_id}, complete, finished {before.finished}); "
        "nothing to do (--overwrite runs it again)"
    )
    assert load_record(sim) == before
    assert verify_files(sim) == []
    cwd = Path.cwd()
    os.chdir(world.root)  # the very command that made the training run, as typed
    try:
        code, out, err = _run(
            ["train", "train.toml", "--data", "runs/sim", "--out", "runs/det", "--no-progress"]
        )
    finally:
        os.chdir(cwd)
    assert code == 0, err
    assert out.startswith("runs/det: already complete (train run ")
    card = sim / "data.zarr" / "DATASET_CARD.md"
    card.write_text(card.read_text() + "edited\n")
    code, out, err = _run(argv)
    _assert_one_line_error(
        code, out, err, ("already holds a finished simulate run", "differ from its record")
    )
    code, out, err = _run([*argv, "--overwrite"])
    assert code == 0, err
    assert load_record(sim).run_id != before.run_id
    assert dataset_hash(sim / "data.zarr") == dataset_hash(world.sim / "data.zarr")


def test_reproducing_twice_compares_again(world: World) -> None:
    out = world.root / "o" / "reproduced"
    for _ in range(2):
        code, text, err = _run(["reproduce", str(world.sim), "--out", str(out), "--no-progress"])
        assert code == 0, err
        assert "verdict: BIT-FOR-BIT" in text


def test_a_finished_sbi_run_asked_for_again_is_already_complete(sbi_run: Path) -> None:
    before = load_record(sbi_run)
    argv = ["sbi", "train", str(sbi_run.parent / "tiny.toml"), "--out", str(sbi_run), "--threads", "1"]
    code, out, err = _run([*argv, "--no-progress"])
    assert code == (0 if before.status == "complete" else 1), err
    assert out.startswith(f"{sbi_run}: already complete (sbi run {before.run_id}, {before.status}")
    assert load_record(sbi_run) == before


def _absolute_paths(root: Path) -> list[bytes]:
    return sorted({os.fsencode(str(root)), os.fsencode(str(root.resolve()))})


def test_records_and_bundles_hold_no_absolute_path(world: World) -> None:
    """The world's runs were made from its folder with relative paths, as a user makes them: no record,
    run file or bundle member may hold the folder's absolute path (it travels to other machines)."""
    cwd = Path.cwd()
    os.chdir(world.root)
    try:
        code, _out, err = _run(["export", "runs/det", "--out", "shared.xtml.zip"])  # writes the model card
    finally:
        os.chdir(cwd)
    assert code == 0, err
    marks = _absolute_paths(world.root)
    with zipfile.ZipFile(world.root / "shared.xtml.zip") as zf:
        names = zf.namelist()
        assert "model_card.md" in names
        assert "DATASET_CARD.md" in names  # found through the record's relative input path
        leaks = [n for n in names for m in marks if m in zf.read(n)]
    assert leaks == []
    with zipfile.ZipFile(world.bundle) as zf:  # exported by the library from an absolute run path
        assert [n for n in zf.namelist() for m in marks if m in zf.read(n)] == []
    run_files = [p for run in (world.sim, world.det, world.one_freq) for p in run.rglob("*") if p.is_file()]
    assert any(p.name == "record.json" for p in run_files)
    assert [
        p
        for p in run_files
        if p.suffix in (".json", ".toml", ".md", ".txt") and any(m in p.read_bytes() for m in marks)
    ] == []
    # the relative paths resolve from anywhere, and records of older versions (absolute) still do
    record = load_record(world.det)
    assert record.inputs["data"]["path"] == os.path.join("..", "sim", "data.zarr")
    assert record.input_path("data").resolve() == (world.sim / "data.zarr").resolve()
    old = dataclasses.replace(record, inputs={"data": {"path": str(world.sim / "data.zarr"), "sha256": "x"}})
    assert old.input_path("data") == world.sim / "data.zarr"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [False, True], ids=["log file", "terminal"])
def test_progress_bars_only_on_a_terminal(
    world: World, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    """Without --no-progress, a bar is drawn when stderr is a terminal and never into a log file."""
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    out = world.root / "o" / f"progress-{terminal}"
    with monkeypatch.context() as m:
        m.setattr(sys, "stdout", io.StringIO())
        assert main(["simulate", str(world.root / "sim.toml"), "--n", str(N), "--out", str(out)]) == 0
    drawn = stream.getvalue()
    if terminal:
        assert "simulate data.zarr" in drawn
        assert "3/3" in drawn
    else:
        assert drawn == ""
