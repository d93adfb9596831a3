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
