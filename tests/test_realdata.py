"""Real observations (``../shared/realdata``, see its SOURCES.md): files that must read and analyse right.

Skipped, saying so, where that folder is absent (a user's clone); CI has it. The files are never copied into
the project: they are read in place (the zipped Cyg X-1 light curve is unpacked into a temporary folder).
"""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from xtml.timing import observation_spectrum, read_events, read_lightcurve

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
pytestmark = pytest.mark.skipif(
    not REALDATA.is_dir(), reason=f"real observations not available: {REALDATA} is absent (a user's clone)"
)


@pytest.fixture(scope="module")
def cygx1(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cygx1")
    with zipfile.ZipFile(REALDATA / "cygx1_test_20ms_2to4keV.lc.zip") as z:
        name = next(n for n in z.namelist() if n.endswith(".lc") and "__MACOSX" not in n)
        z.extract(name, out)
    return out / name


def test_cyg_x1_resampled_light_curve_is_read_whole_and_its_beat_explained(cygx1):
    """RXTE 20 ms light curve made from 1/64 s data: FRACEXP alternates 0.78125 / 1.5625. Every bin is
    kept (not dropped as partial exposure), the native resolution and the beat frequencies are found, and
    the periodogram at 0.02 s shows the predicted spikes (Leahy ~1e4) that a 0.5 s bin time removes."""
    lc = read_lightcurve(cygx1)
    assert lc.dt == pytest.approx(0.02)
    assert lc.native_dt == 1 / 64
    assert lc.clean_dt == pytest.approx(0.5)
    assert lc.beat_freqs == (14.0, 22.0)  # |50 m - 64 n| folded below the 25 Hz Nyquist frequency
    assert lc.counts.size == 665_400  # none of the 479,088 FRACEXP = 0.78 bins dropped
    assert lc.gti.shape == (10, 2)  # the file's 10 GTIs, not 186,312 one-bin ones
    assert any("1 or 2 native bins of 0.015625 s" in n and "14, 22 Hz" in n for n in lc.notes)
    assert lc.counts.sum() / lc.exposure == pytest.approx(2023, rel=0.01)  # SOURCES.md: 2023 ct/s
    # the explanation is right: the raw 0.02 s periodogram has the spikes where predicted
    n = 2048
    seg = lc.counts[: 64 * n].reshape(64, n)
    leahy = (2 * np.abs(np.fft.rfft(seg, axis=1)) ** 2 / seg.sum(axis=1, keepdims=True)).mean(axis=0)
    freq = np.fft.rfftfreq(n, lc.dt)
    high = (freq > 10) & (freq < 24)
    for f in (14.0, 22.0):
        near = np.abs(freq - f) < 0.03  # 14 and 22 Hz fall between Fourier frequencies of 40.96 s
        assert leahy[near].max() > 300 * np.median(leahy[high]), f  # > 2,500 against a level of 3-4
    top2 = np.sort(freq[high][np.argsort(leahy[high])[-2:]])
    np.testing.assert_allclose(top2, [14.0, 22.0], atol=0.03)  # the two strongest lines above 10 Hz
    with pytest.raises(
        ValueError,
        match=r"resampled from native 0.015625 s bins.*spikes at 14, 22 Hz.*"
        r"multiple of 0.5 s",
    ):
        observation_spectrum(lc, dt=0.02, segment_size=40.96)
    ps, notes = observation_spectrum(lc, dt=0.5, segment_size=128.0)
    assert notes["segments_used"] >= 90
    assert np.all(np.isfinite(ps.power))


def test_xmm_light_curve_with_gtis_shorter_than_a_bin_says_so():
    """XMM EPIC-pn, 100 s bins, 9,731 GTIs of at most 9.2 s: the reason given is the GTIs, not 'not an
    EVENTS table', both from the light-curve reader and from the reader of `xtml analyze` and `xtml fit`."""
    from xtml.timing.observation import read_observation

    path = REALDATA / "PN_source_lightcurve_raw.lc"
    with pytest.raises(
        ValueError,
        match=r"every one of the file's 9731 GTIs is shorter than a bin \(the longest"
        r" is 9.16 s, the bins 100 s\)",
    ):
        read_lightcurve(path)
    with pytest.raises(
        ValueError, match=r"9731 GTIs is shorter than a bin.*\(read as a light curve: HDU 'RATE'"
    ):
        read_observation(path)


def test_event_files_still_read_as_events():
    ev = read_events(REALDATA / "sgr1830kgfilt.evt")
    assert ev.times.size / ev.exposure == pytest.approx(9.5, rel=0.05)  # SOURCES.md: 9.5 ct/s


@pytest.mark.parametrize(
    ("name", "dt", "segment", "f_known"),
    [
        ("B1509_RXTE_short.fits", 1 / 64, 512.0, 6.5957),  # PSR B1509-58 at the file's epoch
        ("sgr1830kgfilt.evt", 1 / 8, 128.0, 0.0960086),  # SGR 1830-0645 spin
        ("ngc300nicer_bary.evt", 1 / 8, 128.0, 0.050375),  # NGC 300 ULX-1 spin
    ],
)
def test_known_pulsations_are_found_with_a_calibrated_trial_corrected_significance(
    name, dt, segment, f_known
):
    """Each known spin (SOURCES.md) is the strongest peak, within half a Fourier bin, and significant after
    searching every bin: no simulation of the fitted continuum reaches it."""
    from xtml.reference.search import periodicity_search

    ps, _ = observation_spectrum(read_events(REALDATA / name), dt=dt, segment_size=segment)
    res = periodicity_search(ps, n_sim=50, alpha=0.05, rng=0)
    assert abs(res.freq - f_known) <= res.freq_resolution / 2, res.summary()
    assert res.significant, res.summary()
    assert res.at_floor
    assert res.p_analytic < 1e-6
    assert res.n_trials == ps.n_freq


def test_matched_observation_blocks_come_from_the_files():
    """The observation block and detector of a matched run, derived from the files: Cyg X-2's RXTE light
    curve (1 s bins, three GTIs, 4,044 ct/s: binned dead time of the PCA, the assumed PCU count said), and
    NICER's SGR 1830-0645 (its DEADTIME column, 47 focal-plane modules with events)."""
    from xtml.workflows.matched import match_observation

    cyg = match_observation([REALDATA / "std1_ao9_01_01.lc"])
    assert (cyg.mission, cyg.kind, cyg.dt) == ("xte", "light curve", 1.0)
    assert cyg.n_segments * cyg.segment_length >= 0.9 * 10240  # of 10,451 s in three GTIs of ~3,440 s
    assert cyg.n_segments <= cyg.segments_available[0]
    assert cyg.n_segments >= 8
    assert cyg.detected_rate[0] == pytest.approx(4044, rel=1e-3)  # SOURCES.md
    assert cyg.detector.binned
    assert cyg.detector.dead_time == pytest.approx(1e-5 / 2)
    assert "assumed 2" in cyg.detector.source
    assert "Jahoda et al. 2006" in cyg.detector.source
    # the incident rate inverts the non-paralyzable dead time
    r = cyg.incident_rate[0]
    assert r / (1 + r * cyg.detector.dead_time) == pytest.approx(cyg.detected_rate[0])
    assert match_observation([REALDATA / "std1_ao9_01_01.lc"], n_detectors=3).detector.dead_time == (
        pytest.approx(1e-5 / 3)
    )
    sgr = match_observation([REALDATA / "sgr1830kgfilt.evt"])
    assert sgr.kind == "events"
    assert sgr.detector.n_detectors == 47
    assert not sgr.detector.binned
    assert sgr.detector.dead_time == pytest.approx(2.254e-5 / 47, rel=1e-3)
    assert "DEADTIME column" in sgr.detector.source
    assert 1 / 256 <= sgr.dt <= 1.0
    assert sgr.n_segments * sgr.segment_length <= 984
    with pytest.raises(ValueError, match="one mission"):
        match_observation([REALDATA / "std1_ao9_01_01.lc", REALDATA / "sgr1830kgfilt.evt"])
    with pytest.raises(ValueError, match="whole multiple of the light curves' bin time 1 s"):
        match_observation([REALDATA / "std1_ao9_01_01.lc"], dt=1.5)


def test_cyg_x2_is_in_scope_for_a_matched_run_with_an_answer(tmp_path):
    """`xtml sbi train --like` on Cyg X-2's RXTE light curve (small: 1,000 simulations): the scenario comes
    from the file, the posterior passes its gate, the file is in scope, and the answer stands next to the
    Zhang and naive fits of the same spectrum (and says why there is no FAD fit)."""
    from xtml.workflows.matched import train_matched_sbi

    answer = train_matched_sbi(
        [REALDATA / "std1_ao9_01_01.lc"],
        tmp_path / "run",
        n_train=1000,
        n_test=200,
        n_calibration=200,
        n_sim=0,
        log=None,
        n_threads=1,
    )
    assert answer.fit.model.startswith("red=powerlaw_rms")  # red noise only at 1 s bins (SOURCES.md)
    (row,) = answer.rows
    assert row.error is None
    assert row.in_scope, row.reasons
    assert answer.calibrated
    summary = {p["parameter"]: p for p in row.posterior}
    zhang, naive, fad = answer.classical[0][:3]
    assert zhang.method.startswith("Zhang")
    assert naive.method == "naive fit"
    assert "not available" in fad.note
    for name in ("red.rms", "red.index"):  # the posterior and the fit agree within their spreads
        width = summary[name]["hi68"] - summary[name]["lo68"]
        assert abs(summary[name]["median"] - zhang.params[name]) < 3 * (width / 2 + zhang.errors[name])
    assert summary["rate"]["lo95"] < answer.match.incident_rate[0] < summary["rate"]["hi95"]
    assert (tmp_path / "run" / "matched.json").is_file()


def test_fit_and_analyze_select_pi_channels(capsys):
    """`--pi LO HI` keeps the events with LO <= PI < HI (NICER's PI column): the quoted rate is that of the
    selected events, as read_events counts them; a light curve refuses a band it cannot select."""
    from xtml.cli import main

    path = REALDATA / "sgr1830kgfilt.evt"
    pi = read_events(path).pi
    inside = read_events(path, pi_range=(50, 300))
    assert inside.times.size == np.count_nonzero((pi >= 50) & (pi < 300)) < pi.size
    args = ["fit", str(path), "--model", "broad=zero_lorentzian", "--n-sim", "0", "--segment-size", "64"]
    assert main([*args, "--pi", "50", "300"]) == 0
    out = capsys.readouterr().out
    assert f"{inside.times.size / inside.exposure:.4g} ct/s over all" in out
    assert "DEADTIME column" in out
    assert "47 detectors" in out
    assert main([*args, "--pi", "300", "50"]) == 2
    assert "--pi must be two channels 0 <= LO < HI, got 300 50" in capsys.readouterr().err
    lc = ["fit", str(REALDATA / "std1_ao9_01_01.lc"), "--model", "broad=zero_lorentzian", "--pi", "1", "9"]
    assert main(lc) == 2
    assert "a binned light curve has its band already" in capsys.readouterr().err


def test_a_matched_detection_scenario_loads_and_spans_the_band(capsys):
    """`xtml train --like`: the derived simulation has a no-QPO class (the fit's continuum and priors) and a
    QPO class (the same continuum plus a Lorentzian from 8 / T_seg to half the Nyquist frequency), on the
    matched grid and detector; CONFIG or --data next to --like is refused."""
    from xtml.cli import main
    from xtml.data import SimulationConfig
    from xtml.workflows.matched import (
        match_observation,
        matched_detection_config,
        observation_spectrum_of,
        quick_fit,
    )

    match = match_observation([REALDATA / "std1_ao9_01_01.lc"])
    fit = quick_fit(observation_spectrum_of(match), match.detector, n_sim=0)
    config = SimulationConfig.from_dict(matched_detection_config(match, fit))
    assert config.class_names == ("noise", "qpo")
    noise, qpo = config.classes
    assert set(qpo.model.param_names) == set(noise.model.param_names) | {"qpo.nu0", "qpo.q", "qpo.rms"}
    nu0 = qpo.prior.priors["qpo.nu0"]
    assert nu0.low == pytest.approx(8 / match.segment_length)
    assert nu0.high == pytest.approx(0.25 / match.dt)
    rms = qpo.prior.priors["qpo.rms"]  # relative to the continuum (Cyg X-2's red noise: ~2.5 % rms)
    assert rms.low == pytest.approx(0.1 * fit.params["red.rms"])
    assert rms.high == pytest.approx(3 * fit.params["red.rms"])
    assert config.observation.dt == match.dt
    assert config.observation.n_segments == match.n_segments
    assert config.detector.dead_time.binned
    assert main(["train", "x.toml", "--like", "a.lc", "--out", "o"]) == 2
    assert "not both" in capsys.readouterr().err
