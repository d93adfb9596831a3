"""`xtml analyze`: real event files (those Stingray ships) and simulated ones in, answers with scope flags
out; bad files get error rows and the rest of the batch goes on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import stingray
from astropy.io import fits
from scipy import stats

from xtml.analyze import analyze_files, rows_table
from xtml.cli import main
from xtml.psd import Lorentzian, PSDModel, ZeroCentredLorentzian
from xtml.simulate import simulate_rate

DATA = Path(os.path.dirname(stingray.__file__)) / "tests" / "data"
REAL = ["xte_test.evt.gz", "xte_gx_test.evt.gz", "chandra_test.fits", "monol_testA.evt", "xmm_test.fits"]


def _write_events(path: Path, times: np.ndarray, gti: np.ndarray, *, mission: str = "NUSTAR") -> Path:
    """A minimal OGIP event file: EVENTS (TIME) and GTI extensions."""
    header = fits.Header()
    header["TELESCOP"], header["INSTRUME"], header["OBJECT"] = mission, "FPMA", "simulated QPO"
    header["TIMESYS"], header["MJDREFI"], header["MJDREFF"], header["TIMEZERO"] = (
        "TT",
        55197,
        0.00076601852,
        0.0,
    )
    events = fits.BinTableHDU.from_columns([fits.Column(name="TIME", format="D", array=times)], header=header)
    events.name = "EVENTS"
    g = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="D", array=gti[:, 0]),
            fits.Column(name="STOP", format="D", array=gti[:, 1]),
        ],
        header=header,
    )
    g.name = "GTI"
    fits.HDUList([fits.PrimaryHDU(header=header), events, g]).writeto(path, overwrite=True)
    return path


def _qpo_event_file(path: Path, rate: float, seed: int) -> Path:
    """Events of a source like the learning run's QPO class: 16 s of 1/128 s bins, one module."""
    rng = np.random.default_rng(seed)
    model = PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()})
    theta = np.array([[1.0, 0.1, 8.0, 8.0, 0.15]])
    dt, n = 1 / 128, 2048
    r, _ = simulate_rate(model, theta, mean_rate=rate, dt=dt, n_bins=n, rng=rng)
    counts = rng.poisson(r[0] * dt)
    t0 = 3.0e8
    times = t0 + (np.repeat(np.arange(n), counts) + rng.random(counts.sum())) * dt
    return _write_events(path, np.sort(times), np.array([[t0, t0 + n * dt]]))


@pytest.mark.parametrize("name", REAL)
def test_every_shipped_observation_gets_an_answer_and_an_honest_scope_flag(
    learn_run: Path, name: str
) -> None:
    rows = analyze_files([DATA / name], [learn_run])
    assert len(rows) == 1
    row = rows[0]
    assert row.error is None, row.error
    assert row.mission
    assert row.prediction.startswith("QPO p = ")
    assert 0 <= row.probability <= 1
    # the run was trained on 500-1,000 ct/s of an ideal two-module detector: none of these is like it
    assert row.in_scope is False
    assert any("mean count rate" in why or "unusual input" in why for why in row.reasons)


def test_a_simulated_observation_like_the_training_data_is_in_scope(learn_run: Path, tmp_path: Path) -> None:
    path = _qpo_event_file(tmp_path / "qpo.evt", rate=750.0, seed=4)
    (row,) = analyze_files([path], [learn_run])
    assert row.error is None, row.error
    assert row.in_scope, row.reasons
    assert row.probability > 0.9  # a 15 % rms QPO at 8 Hz: an easy detection for this run
    # the same source with a 6 s hole in the events (inside the GTI) is caught by the gap check
    with fits.open(path) as f:
        times = f["EVENTS"].data["TIME"].copy()
        gti = np.column_stack([f["GTI"].data["START"], f["GTI"].data["STOP"]])
    hole = (times > gti[0, 0] + 5) & (times < gti[0, 0] + 11)
    holed = _write_events(tmp_path / "hole.evt", times[~hole], gti)
    (row,) = analyze_files([holed], [learn_run])
    assert not row.in_scope
    assert any("a gap of 6" in why for why in row.reasons)


def test_bad_files_get_error_rows_and_the_batch_goes_on(learn_run: Path, tmp_path: Path, capsys) -> None:
    good = _qpo_event_file(tmp_path / "good.evt", rate=700.0, seed=5)
    truncated = tmp_path / "truncated.evt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    no_time = tmp_path / "no_time.evt"
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="PI", format="J", array=np.arange(5))])
    hdu.name = "EVENTS"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(no_time)
    empty = _write_events(tmp_path / "empty.evt", np.zeros(0), np.array([[0.0, 100.0]]))
    outside = _write_events(tmp_path / "outside.evt", np.linspace(500, 600, 50), np.array([[0.0, 100.0]]))
    short = _write_events(tmp_path / "short.evt", np.linspace(0, 9, 5000), np.array([[0.0, 10.0]]))
    other = DATA / "chandra_test.fits"  # another mission: analysed in the same call, grouped apart
    files = [good, truncated, no_time, empty, outside, short, other, good]
    rows = analyze_files(files, [learn_run], workers=2)
    assert [Path(r.path).name for r in rows] == [f.name for f in files]  # order kept
    by = {Path(r.path).name: r for r in rows}
    assert rows[0].error is None
    assert rows[-1].error is None
    assert rows[0].probability == rows[-1].probability
    for name, expected in [
        ("truncated.evt", "truncated"),
        ("no_time.evt", "TIME"),
        ("empty.evt", "no events"),
        ("outside.evt", "outside"),
        ("short.evt", "longer than"),
    ]:
        error = by[name].error
        assert error is not None, name
        assert name in error, (name, error)
        assert expected.lower() in error.lower(), (name, error)
    assert "differs from the batch" not in str(by["chandra_test.fits"].error)
    table = rows_table(rows)
    assert "-- NUSTAR (" in table, table  # grouped by mission
    assert "-- AXAF (" in table, table  # Chandra, as its files name it
    assert f"model of {learn_run}: " in table
    assert all(r.model.endswith("(its headline)") for r in rows if r.error is None)
    code = main(["analyze", str(good), str(empty), "--run", str(learn_run)])
    out = capsys.readouterr().out
    assert code == 1
    assert "ERROR" in out
    assert "1 error(s)" in out
    code = main(["analyze", str(DATA / "xte_test.evt.gz"), "--run", str(learn_run), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert payload[0]["in_scope"] is False
    assert payload[0]["mission"].lower() == "xte"


def test_analyze_with_an_sbi_run_and_plots(sbi_power_run: Path, tmp_path: Path) -> None:
    rows = analyze_files(
        [DATA / "xmm_test.fits"],
        [sbi_power_run],
        allow_uncalibrated=True,
        plot_dir=tmp_path / "plots",
        n_samples=200,
    )
    row = rows[0]
    assert row.error is None, row.error
    assert {p["parameter"] for p in row.posterior} >= {"qpo.nu0", "qpo.rms"}
    assert row.in_scope is False  # an XMM-Newton EPIC-pn observation of ~1,700 ct/s, not a dead-time pair
    assert len(list((tmp_path / "plots").glob("*.png"))) == 2  # the spectrum and the domain embedding
    assert (tmp_path / "plots" / f"domain_{sbi_power_run.name}.png").is_file()
    assert "OUT OF SCOPE" in rows_table(rows)


def test_fit_and_analyze_quote_the_same_rate_of_a_file(learn_run: Path, capsys) -> None:
    """One rate per file and grid: `xtml fit` on the run's grid prints what `xtml analyze` notes, and both
    say over which seconds (the analysed segments, and all the good time when that differs)."""
    from xtml.analyze import load_run
    from xtml.cli import main

    path = DATA / "xte_test.evt.gz"
    o = load_run(learn_run).observation
    (row,) = analyze_files([path], [learn_run])
    rate_note = next(n for n in row.notes if n.startswith("rate: "))[len("rate: ") :]
    assert f"{row.rate:.4g} ct/s in the {row.exposure_analysed:.6g} s analysed" in rate_note
    assert "over all 1226 s of good time" in rate_note  # the file's 999 events / 1226 s: 0.8148 ct/s
    assert "0.8148 ct/s over all" in rate_note
    fit_args = [
        "--model",
        "broad=zero_lorentzian",
        "--dt",
        str(o.dt),
        "--segment-size",
        str(o.segment_length),
    ]
    code = main(["fit", str(path), *fit_args])
    assert code in (0, 1)  # 1: the fit of this faint file sits at a bound; its rate line is what we read
    first = capsys.readouterr().out.splitlines()[0]
    # fit averages every whole segment (all 1226 s here: the file's rate), analyze the run's n_segments
    assert f"0.8148 ct/s in the 1226 s analysed ({1226 / o.segment_length:.0f} segments of" in first
    assert rate_note.endswith("0.8148 ct/s over all 1226 s of good time")


def test_missing_files_are_said_before_any_run_is_loaded(tmp_path):
    """Every file missing: one error naming them, before the run (here not even a run) is opened."""
    with pytest.raises(ValueError, match=r"these files do not exist: .*a\.evt, .*b\.evt"):
        analyze_files([tmp_path / "a.evt", tmp_path / "b.evt"], [tmp_path / "not_a_run"])


def test_score_spectra_in_memory_with_every_model(learn_run: Path, sbi_power_run: Path) -> None:
    """A loaded run scores spectra a user holds: a PowerSpectrum or bare powers (with their rates) on the
    run's grid give the same answers, for every model of the run; the best model's probabilities are
    those `xtml analyze` gives; an SBI run's posterior medians follow the simulated truths; another
    grid is refused, naming the difference."""
    from xtml.analyze import _answer_learn, load_run, score_spectra
    from xtml.data import open_dataset

    ds = open_dataset(learn_run.parent / "data.zarr")
    rows = np.arange(40)
    ps = ds.spectra(rows)
    run = load_run(learn_run)
    scores = score_spectra(run, ps)
    assert scores.kind == "learn"
    assert set(scores.values) == {"logistic", "random_forest", "hist_gb"}
    assert scores.best == run.model_name
    assert all(v.shape == (40, 2) for v in scores.values.values())
    np.testing.assert_allclose(
        scores.values[run.model_name][3, 1], _answer_learn(run, ps.select([3]))["probability"]
    )
    bare = score_spectra(run, ps.power, mean_rate=ps.mean_rate)
    for name, v in scores.values.items():
        np.testing.assert_array_equal(bare.values[name], v)
    np.testing.assert_array_equal(bare.in_scope, scores.in_scope)
    assert scores.in_scope.mean() > 0.8  # the run's own kind of data
    assert scores.names == ("no QPO", "QPO")
    has_qpo = np.asarray(ds.array("labels"))[rows] == list(ds.class_names).index("qpo")
    assert np.mean((scores.values[run.model_name][:, 1] > 0.5) == has_qpo) > 0.8
    with pytest.raises(ValueError, match="give mean_rate"):
        score_spectra(run, ps.power)
    with pytest.raises(ValueError, match=r"the run's \d+ frequencies per row"):
        score_spectra(run, ps.power[:, :-1], mean_rate=ps.mean_rate)

    test = open_dataset(sbi_power_run / "test.zarr")
    sbi = score_spectra(sbi_power_run, test.spectra(np.arange(30)), n_samples=500)
    assert sbi.kind == "sbi"
    assert sbi.best == "posterior"
    assert np.all((sbi.values["lo68"] <= sbi.values["median"]) & (sbi.values["median"] <= sbi.values["hi68"]))
    k = sbi.names.index("qpo.nu0")
    truth = np.asarray(test.array("params"))[:30, list(test.param_names).index("qpo.nu0")]
    assert (
        stats.spearmanr(sbi.values["median"][:, k], truth).statistic > 0.5
    )  # the posterior follows the truth


def test_spectrum_command_saves_power_cospectrum_and_fad_for_xtml_and_stingray(
    tmp_path: Path, capsys
) -> None:
    """`xtml spectrum`: two NuSTAR-like modules with 2.5 ms dead time at 300 ct/s. The summed power's white
    noise is dented below 2 (Zhang), the cospectrum's noise averages 0 and the FAD-corrected power is back
    at 2; each product is written as .npz (read back identically) and .ecsv, which Stingray reads."""
    from stingray import AveragedPowerspectrum

    from xtml.simulate import DeadTime, apply_dead_time
    from xtml.timing.products import load_spectrum_file

    rng = np.random.default_rng(11)
    gti = np.array([[0.0, 256.0]])
    files = []
    for name in ("fpma.evt", "fpmb.evt"):
        incident = np.sort(rng.uniform(0, 256.0, rng.poisson(300 * 256)))
        kept = apply_dead_time(incident, DeadTime(2.5e-3), rng=rng).times
        files.append(_write_events(tmp_path / name, kept, gti))
    out = tmp_path / "spectra"
    args = [
        "spectrum",
        *map(str, files),
        "--out",
        str(out),
        "--kind",
        "fad",
        "--segment-size",
        "8",
        "--no-plot",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "FAD compliance delta" in printed
    total, meta = load_spectrum_file(out / "fpma_power_total.npz")
    fad, _ = load_spectrum_file(out / "fpma_fad_power.npz")
    cos, _ = load_spectrum_file(out / "fpma_cospectrum.npz")
    assert meta["segments_used"] == 32
    high = total.freq > 20
    assert total.power[0, high].mean() < 1.8  # Zhang: ~2 (1 - 2 r tau) at 300 ct/s detected ~170 ct/s
    assert fad.power[0, high].mean() == pytest.approx(2.0, abs=0.05)
    assert abs(cos.power[0, high].mean()) < 4 * np.sqrt(2 / (32 * high.sum()))
    st = AveragedPowerspectrum.read(str(out / "fpma_fad_power.ecsv"), fmt="ascii.ecsv")
    np.testing.assert_allclose(st.power, fad.power[0])
    np.testing.assert_allclose(st.freq, fad.freq)
    assert main(["spectrum", str(files[0]), "--out", str(out), "--kind", "cospectrum"]) == 2
    assert "needs the event files of two modules" in capsys.readouterr().err
