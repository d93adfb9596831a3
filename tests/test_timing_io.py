"""Reading real observations: every event file and light curve that ships with Stingray, and the errors.

The files are Stingray's test data (``stingray/tests/data``) and ``stingray/datasets/lc_sample.txt``: RXTE/PCA
(4U 1636-53, M82 ULX), Chandra/ACIS (M82), AstroSat/LAXPC (Crab), eROSITA (a light curve), and synthetic
NuSTAR-like, XMM-like and mission-less files. Science checks: the event counts agree with Stingray's own
reader after its GTI filter, spectra agree with Stingray's ``AveragedPowerspectrum``, the Leahy white-noise
level is 2 within its error where the source is faint, dead time lowers it as the Zhang et al. (1995) model
predicts with the dead time read from the PRIOR column, and a light curve equals the events it was made from.
"""

import gzip
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import stingray
from astropy.io import fits
from stingray import AveragedPowerspectrum, EventList, Lightcurve

from xtml.reference import zhang_leahy_for_spectrum
from xtml.timing import (
    BinnedLightCurve,
    EventData,
    observation_spectrum,
    periodogram,
    periodogram_from_events,
    read_events,
    read_lightcurve,
    rebin_log,
    spectrum_from_event_file,
)

DATA = Path(os.path.dirname(stingray.__file__)) / "tests" / "data"
LC_SAMPLE = Path(os.path.dirname(stingray.__file__)) / "datasets" / "lc_sample.txt"

# file: (mission, instrument, target, events in the file)
EVENT_FILES = {
    "xte_test.evt.gz": ("xte", "PCA", "4U_1636-53", 1000),
    "xte_gx_test.evt.gz": ("xte", "PCA", "M82_ULX", 3518),
    "chandra_test.fits": ("axaf", "ACIS", "M82", 4612),
    "chandra_noener_test.fits": ("axaf", "ACIS", "M82", 4612),
    "laxpc_file_read.fits": ("astrosat", "LAXPC3", "Crab", 1000),
    "monol_testA.evt": ("nustar", "FPMA", "Fake X-1", 1000),
    "xmm_test.fits": ("xmm", "epn", "Fake X-1", 1708244),
    "nomission.evt": ("babasone", "INSTRUMO", "Fake X-1", 1000),
}
WITH_ENERGY = [f for f in EVENT_FILES if f not in ("nomission.evt", "xmm_test.fits")]


@pytest.fixture(scope="module")
def events():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = read_events(DATA / name)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def stingray_events():
    """Stingray's own reading, sorted, after its GTI filter (``EventList.apply_gtis``)."""
    cache = {}

    def get(name):
        if name not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unclosed FITS file, missing optional keywords
                ev = EventList.read(str(DATA / name), fmt="ogip")
                ev = ev.sort()  # nomission.evt is not in time order; apply_gtis needs sorted times
                cache[name] = (len(ev.time), ev.apply_gtis(inplace=False))
        return cache[name]

    return get


def _stingray_pds(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "M < 30" notes
        if isinstance(args[0], EventList):
            return AveragedPowerspectrum.from_events(*args, **kwargs)
        return AveragedPowerspectrum(*args, **kwargs)


def _white_level(ps, f_min):
    """Mean Leahy power above f_min and its error: each power averaged over m segments has std 2 / sqrt(m)."""
    sel = ps.freq > f_min
    return ps.power[0, sel].mean(), 2.0 / np.sqrt(ps.m[sel].sum())


# --- event files ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EVENT_FILES))
def test_event_file_reads_as_stingray_does(name, events, stingray_events):
    mission, instrument, target, n_file = EVENT_FILES[name]
    ev = events(name)
    n_read, theirs = stingray_events(name)
    assert (ev.mission, ev.instrument, ev.target) == (mission, instrument, target)
    assert ev.n_events_read == n_read == n_file
    # Agreement with the library: the same events survive the GTI filter, at the same mission times.
    assert ev.n_events_kept == len(ev.times) == len(theirs.time)
    np.testing.assert_allclose(ev.times + ev.t_ref, np.asarray(theirs.time, dtype=float), rtol=0, atol=1e-6)
    assert np.all(np.diff(ev.times) >= 0)
    inside = np.zeros(ev.times.size, dtype=bool)
    for g0, g1 in ev.gti:
        inside |= (ev.times >= g0) & (ev.times <= g1)
    assert inside.all()
    assert ev.exposure == pytest.approx(np.sum(ev.gti[:, 1] - ev.gti[:, 0]), rel=1e-12)
    assert ev.exposure == pytest.approx(float(theirs.exposure), rel=1e-9)
    assert ev.t_ref == np.floor(ev.t_ref)
    assert 0 <= ev.gti[0, 0] < 1
    for column in (ev.energy, ev.pi):
        assert column is None or column.shape == ev.times.shape


def test_event_metadata_from_the_headers(events):
    xte, gx, acis, nustar = (
        events(n) for n in ("xte_test.evt.gz", "xte_gx_test.evt.gz", "chandra_test.fits", "monol_testA.evt")
    )
    assert (xte.telescope, xte.timesys, xte.timeref) == ("XTE", "tt", "local")
    assert xte.mjdref == pytest.approx(49353.000696574074, abs=1e-12)
    assert xte.time_resolution == 2.0**-13  # PCA event mode tick
    assert (gx.timesys, gx.timeref) == ("tdb", "solarsystem")  # barycentred
    assert acis.header_exposure == pytest.approx(18279.338652893)
    assert acis.live_fraction == pytest.approx(18279.338652893 / 20154.79879868)  # LIVETIME / ONTIME
    assert acis.exposure < acis.header_exposure
    assert any("EXPOSURE keyword" in n for n in acis.notes)
    assert nustar.live_fraction == 1.0
    assert nustar.dead_time is None
    assert any("PRIOR" in n for n in nustar.notes)
    assert any("no GTI extension" in n for n in events("laxpc_file_read.fits").notes)
    assert any("sorted" in n for n in events("nomission.evt").notes)
    assert any("outside the GTIs dropped" in n for n in gx.notes)


def test_prior_column_gives_the_dead_time_behind_livetime(events):
    """The XMM-like file carries a PRIOR column: 0.1 ms per event, which is what LIVETIME says too."""
    ev = events("xmm_test.fits")
    assert ev.dead_time == pytest.approx(1e-4, rel=1e-6)
    implied = 1 - ev.n_events_kept * ev.dead_time / ev.exposure
    assert ev.live_fraction == pytest.approx(implied, rel=2e-3)


@pytest.mark.parametrize("name", WITH_ENERGY)
def test_energy_filter_keeps_the_band(name, events, stingray_events):
    band = (3.0, 10.0)
    ev = read_events(DATA / name, energy_range=band)
    assert ev.energy_range == band
    assert np.all((ev.energy >= 3.0) & (ev.energy < 10.0))
    assert 0 < ev.n_events_kept < events(name).n_events_kept
    assert ev.n_events_read == events(name).n_events_read
    theirs = stingray_events(name)[1].filter_energy_range(list(band), inplace=False)
    assert ev.n_events_kept == len(theirs.time)


def test_pi_filter_without_energies():
    ev = read_events(DATA / "nomission.evt", pi_range=(100, 500))
    assert ev.energy is None
    assert np.all((ev.pi >= 100) & (ev.pi < 500))
    assert 0 < ev.n_events_kept < 1000


# --- spectra of event files -------------------------------------------------------------------------------

# file, dt, segment size: dt a multiple of the file's clock tick, as Stingray requires
SPECTRA = [
    ("xte_test.evt.gz", 1 / 64, 16.0),
    ("xte_gx_test.evt.gz", 1 / 4096, 1.0),
    ("chandra_test.fits", 4 * 0.44104, 256 * 0.44104),
    ("laxpc_file_read.fits", 8 * 9.99999975e-06, 512 * 8 * 9.99999975e-06),
    ("monol_testA.evt", 1 / 16, 32.0),
    ("nomission.evt", 1 / 16, 32.0),
    ("xmm_test.fits", 1 / 1024, 1.0),
]


@pytest.mark.parametrize(("name", "dt", "segment"), SPECTRA)
def test_spectrum_agrees_with_stingray(name, dt, segment, events, stingray_events):
    ps, notes = observation_spectrum(events(name), dt=dt, segment_size=segment)
    theirs = _stingray_pds(stingray_events(name)[1], dt=dt, segment_size=segment, norm="leahy")
    assert ps.n_segments == theirs.m == notes["segments_used"] == notes["segments_available"]
    np.testing.assert_allclose(ps.freq, theirs.freq, rtol=1e-12)
    np.testing.assert_allclose(ps.power[0], theirs.power, rtol=1e-10)
    assert notes["exposure_analysed_s"] == pytest.approx(ps.n_segments * ps.segment_length)
    assert notes["exposure_analysed_s"] <= notes["exposure_total_s"] == events(name).exposure
    assert "warning" not in notes


# file, dt, segment size, lowest frequency of the white-noise band (above any source variability)
WHITE = [
    ("xte_test.evt.gz", 1 / 64, 16.0, 16.0),
    ("xte_gx_test.evt.gz", 1 / 4096, 1.0, 1024.0),  # PCA events correlate on ~ms: excess below ~500 Hz
    ("chandra_test.fits", 4 * 0.44104, 64 * 4 * 0.44104, 0.1),
    ("monol_testA.evt", 1 / 16, 32.0, 2.0),
    ("nomission.evt", 1 / 16, 32.0, 2.0),
]


@pytest.mark.parametrize(("name", "dt", "segment", "f_min"), WHITE)
def test_leahy_white_noise_level_is_two_for_faint_sources(name, dt, segment, f_min, events):
    ps, _ = observation_spectrum(events(name), dt=dt, segment_size=segment)
    level, error = _white_level(ps, f_min)
    assert abs(level - 2.0) < 3 * error, (level, error)


def test_dead_time_lowers_the_leahy_level_as_zhang_predicts(events):
    """XMM-like, 1665 ct/s with 0.1 ms dead time: Zhang's model with the PRIOR dead time, within the error."""
    ev = events("xmm_test.fits")
    ps, _ = observation_spectrum(ev, dt=1 / 1024, segment_size=1.0)
    model = zhang_leahy_for_spectrum(
        1024, float(ps.mean_rate[0]), ev.dead_time, 1 / 1024, rate_is_incident=False
    )
    sel = ps.freq > 256
    error = 2.0 / np.sqrt(ps.m[sel].sum())
    assert model[sel].mean() < 1.5  # far below 2 ...
    assert abs(ps.power[0, sel].mean() - model[sel].mean()) < 3 * error  # ... and where the model says


def test_bright_crab_is_below_two(events):
    """LAXPC on the Crab (~1400 ct/s from two units): dead time pulls the level below 2 by > 3 sigma."""
    tick = 9.99999975e-06
    ps, _ = observation_spectrum(events("laxpc_file_read.fits"), dt=8 * tick, segment_size=512 * 8 * tick)
    level, error = _white_level(ps, 1000.0)
    assert level < 2 - 3 * error


def test_first_n_segments(events):
    ev = events("monol_testA.evt")
    ps, notes = observation_spectrum(ev, dt=1 / 16, segment_size=32.0, n_segments=8)
    assert (notes["segments_used"], notes["segments_available"]) == (8, 32)
    assert notes["exposure_analysed_s"] == 256.0
    assert notes["exposure_total_s"] == 1025.0
    g0 = ev.gti[0, 0]
    ref = periodogram_from_events(ev.times, gti=[[g0, g0 + 256.0]], dt=1 / 16, segment_size=32.0)
    np.testing.assert_array_equal(ps.power, ref.power)
    with pytest.raises(
        ValueError, match=r"monol_testA.evt: n_segments = 40 .* longer than the 1024 s \(32 segments\)"
    ):
        observation_spectrum(ev, dt=1 / 16, segment_size=32.0, n_segments=40)


def test_sparse_segments_are_kept_as_in_training(events):
    """At 0.8 ct/s many 2 s segments hold fewer than 2 events: Stingray skips them, a model's grid may not."""
    ev = events("xte_test.evt.gz")
    ps, notes = observation_spectrum(ev, dt=1 / 64, segment_size=2.0, n_segments=8)
    assert notes["segments_used"] == ps.n_segments == 8
    edges = ev.gti[0, 0] + np.arange(8 * 128 + 1) / 64
    counts = np.histogram(ev.times, edges)[0]
    assert np.sum(counts.reshape(8, 128).sum(axis=1) < 2) > 0  # some sparse segments
    np.testing.assert_allclose(ps.power, periodogram(counts, 1 / 64, segment_bins=128).power, rtol=1e-12)
    skipped = periodogram_from_events(ev.times, gti=[[edges[0], edges[-1]]], dt=1 / 64, segment_size=2.0)
    assert skipped.n_segments < 8


def test_log_rebinning_and_the_file_shortcut(events):
    ps, _ = observation_spectrum(events("xte_test.evt.gz"), dt=1 / 64, segment_size=16.0)
    rebinned, _ = observation_spectrum(
        events("xte_test.evt.gz"), dt=1 / 64, segment_size=16.0, rebin_log_f=0.1
    )
    np.testing.assert_array_equal(rebinned.power, rebin_log(ps, 0.1).power)
    direct = spectrum_from_event_file(DATA / "xte_test.evt.gz", dt=1 / 64, segment_size=16.0, rebin_log_f=0.1)
    np.testing.assert_array_equal(direct.power, rebinned.power)


def test_resolution_warning(events):
    _, notes = observation_spectrum(events("chandra_test.fits"), dt=0.125, segment_size=16.0)
    assert "finer than the time resolution" in notes["warning"]


def test_event_data_built_by_hand_fills_the_defaults():
    ev = EventData("x", np.array([0.5, 1.5]), np.array([[0.0, 2.0], [3.0, 4.0]]), 100.0, "nustar")
    assert (ev.exposure, ev.n_events_read, ev.n_events_kept, ev.energy, ev.notes) == (3.0, 2, 2, None, ())


# --- light curves -----------------------------------------------------------------------------------------


def _regular_inside_gtis(lc):
    for g0, g1 in lc.gti:
        t = lc.time[(lc.time > g0) & (lc.time < g1)]
        np.testing.assert_allclose(t, g0 + lc.dt * (np.arange(t.size) + 0.5), rtol=0, atol=1e-6 * lc.dt)
        assert t.size * lc.dt == pytest.approx(g1 - g0)


def test_lcurve_equals_the_events_it_was_made_from(events):
    """lcurveA.fits is xronos lcurve of monol_testA.evt in 1 s bins (RATE1, FRACEXP, TIMEZERO in TJD)."""
    lc = read_lightcurve(DATA / "lcurveA.fits")
    ev = events("monol_testA.evt")
    assert (lc.target, lc.mission, lc.dt, lc.from_rate, lc.column) == (
        "Fake X-1",
        "unknown",
        1.0,
        True,
        "RATE1",
    )
    assert lc.counts.size == 1025
    assert lc.exposure == 1025.0
    np.testing.assert_allclose(lc.counts, np.round(lc.counts), atol=1e-5)  # rate x dt x FRACEXP = photons
    start_met = lc.t_ref + lc.gti[0, 0] - (ev.mjdref - lc.mjdref) * 86400
    assert start_met == pytest.approx(ev.t_ref + ev.gti[0, 0], abs=1e-3)
    binned = np.histogram(ev.times, ev.gti[0, 0] + np.arange(1026.0))[0]
    np.testing.assert_allclose(lc.counts, binned, atol=1e-5)
    _regular_inside_gtis(lc)
    ps_lc, _ = observation_spectrum(lc, dt=1.0, segment_size=64.0)
    ps_ev, _ = observation_spectrum(ev, dt=1.0, segment_size=64.0)
    np.testing.assert_allclose(ps_lc.power, ps_ev.power, rtol=1e-6)
    level, error = _white_level(ps_lc, 0.0)
    assert abs(level - 2.0) < 3 * error


def test_lcurve_with_gti_extension():
    lc = read_lightcurve(DATA / "lcurve_new.fits")
    # TIMEZERO (TJD) and MJDREF put the first bin at the start of the GTI, 80,000,000 s (NuSTAR-like MET).
    assert lc.t_ref + lc.gti[0, 0] == pytest.approx(80_000_000.0, abs=1e-6)
    assert lc.mjdref == pytest.approx(55197.00076601852)
    assert (lc.dt, lc.counts.size, lc.exposure, lc.from_rate) == (100.0, 10, 1000.0, True)
    np.testing.assert_allclose(lc.counts[:3], [91.0, 105.0, 102.0], rtol=1e-6)  # RATE 0.91, 1.05, 1.02
    ps, notes = observation_spectrum(lc, dt=100.0, segment_size=500.0)
    assert notes["segments_used"] == 2
    level, error = _white_level(ps, 0.0)
    assert abs(level - 2.0) < 3 * error


def test_erosita_light_curve_bands_and_gaps():
    lc = read_lightcurve(DATA / "LightCurve_bexvar.fits")
    assert (lc.mission, lc.telescope, lc.target, lc.dt, lc.from_rate) == (
        "srg",
        "eROSITA",
        "00001",
        100.0,
        False,
    )
    assert any("0.2-5 keV" in n for n in lc.notes)
    np.testing.assert_array_equal(lc.counts, np.round(lc.counts))
    soft = read_lightcurve(DATA / "LightCurve_bexvar.fits", band=1)
    assert any("0.2-2.3 keV" in n for n in soft.notes)
    assert soft.counts.sum() <= lc.counts.sum()
    _regular_inside_gtis(lc)
    # A scanning survey: the source is in view for at most two full 100 s bins in a row.
    longest = np.max(lc.gti[:, 1] - lc.gti[:, 0])
    assert longest == pytest.approx(200.0)
    with pytest.raises(
        ValueError, match=r"LightCurve_bexvar.fits: the segment length 300 s .* longest GTI is 200 s"
    ):
        observation_spectrum(lc, dt=100.0, segment_size=300.0)
    with pytest.raises(ValueError, match="band = 3 is out of range"):
        read_lightcurve(DATA / "LightCurve_bexvar.fits", band=3)


def test_ascii_light_curve_agrees_with_stingray():
    lc = read_lightcurve(LC_SAMPLE)
    assert (lc.dt, lc.counts.size, lc.from_rate, lc.mission) == (0.125, 22143, False, "unknown")
    assert lc.exposure == pytest.approx(22143 * 0.125)
    assert lc.counts.sum() / lc.exposure == pytest.approx(19000, rel=0.01)  # FIELD.md: ~19,000 ct/s
    ps, _ = observation_spectrum(lc, dt=0.125, segment_size=64.0)
    theirs = _stingray_pds(
        Lightcurve(lc.time, lc.counts, dt=lc.dt, gti=lc.gti, skip_checks=True), 64.0, norm="leahy"
    )
    assert ps.n_segments == theirs.m == 43
    np.testing.assert_allclose(ps.power[0], theirs.power, rtol=1e-10)
    # Coarser analysis bins: sums of 4 file bins.
    ps4, _ = observation_spectrum(lc, dt=0.5, segment_size=64.0)
    ref = periodogram(lc.counts[: 43 * 512].reshape(-1, 4).sum(axis=1), 0.5, segment_bins=128)
    np.testing.assert_allclose(ps4.power, ref.power, rtol=1e-12)


def test_single_column_series_needs_its_bin_time():
    path = DATA / "sample_variable_series.fits"
    with pytest.raises(ValueError, match=r"sample_variable_series.fits: no TIME column .* pass dt="):
        read_lightcurve(path)
    lc = read_lightcurve(path, dt=0.01)
    assert (lc.counts.size, lc.column, lc.exposure) == (1_000_000, "data", pytest.approx(10_000.0))
    ps, _ = observation_spectrum(lc, dt=0.01, segment_size=10.24)
    theirs = _stingray_pds(
        Lightcurve(lc.time, lc.counts, dt=lc.dt, gti=lc.gti, skip_checks=True), 10.24, norm="leahy"
    )
    assert ps.n_segments == theirs.m
    np.testing.assert_allclose(ps.power[0], theirs.power, rtol=1e-8)


def test_light_curve_bin_time_against_dt():
    lc = read_lightcurve(DATA / "lcurveA.fits")
    with pytest.raises(
        ValueError, match=r"lcurveA.fits: the light curve is binned at 1 s, coarser than .* dt = 0.5 s"
    ):
        observation_spectrum(lc, dt=0.5, segment_size=64.0)
    with pytest.raises(ValueError, match=r"dt = 1.5 s is not an integer multiple .* 1 s"):
        observation_spectrum(lc, dt=1.5, segment_size=66.0)
    ps, notes = observation_spectrum(lc, dt=2.0, segment_size=64.0, n_segments=10)
    ref = periodogram(lc.counts[:640].reshape(-1, 2).sum(axis=1), 2.0, segment_bins=32)
    np.testing.assert_allclose(ps.power, ref.power, rtol=1e-12)
    assert (notes["segments_used"], notes["segments_available"]) == (10, 16)


# --- errors -----------------------------------------------------------------------------------------------


def _write(path, *hdus):
    fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(path)
    return path


def _events_hdu(times, columns=("TIME",), telescope="NuSTAR"):
    cols = [fits.Column(name=c, format="D", array=np.asarray(times, dtype=float)) for c in columns]
    hdu = fits.BinTableHDU.from_columns(cols, name="EVENTS")
    hdu.header.update({"TELESCOP": telescope, "TSTART": 0.0, "TSTOP": 200.0, "MJDREF": 55197.00076601852})
    return hdu


def _gti_hdu(start, stop):
    return fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="D", array=[start]),
            fits.Column(name="STOP", format="D", array=[stop]),
        ],
        name="GTI",
    )


def test_missing_files():
    with pytest.raises(ValueError, match=r"nothing.evt' does not exist"):
        read_events(DATA / "nothing.evt")
    with pytest.raises(ValueError, match=r"nothing.lc' does not exist"):
        read_lightcurve(DATA / "nothing.lc")


@pytest.mark.parametrize("name", ["monol_testA.evt", "xte_test.evt.gz", "chandra_test.fits"])
def test_truncated_file(name, tmp_path):
    data = (DATA / name).read_bytes()
    half = tmp_path / name
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{name}: corrupt or truncated FITS file"):
        read_events(half)


def test_not_fits(tmp_path):
    with pytest.raises(
        ValueError, match=r"lc_sample.txt: cannot read as a FITS event file: not a readable FITS file"
    ):
        read_events(LC_SAMPLE)
    bad = tmp_path / "words.txt"
    bad.write_text("time counts\nlots of words\n")
    with pytest.raises(ValueError, match=r"words.txt: neither a FITS file nor numeric text columns"):
        read_lightcurve(bad)


def test_fits_without_events_table(tmp_path):
    image = tmp_path / "image.fits"
    fits.HDUList([fits.PrimaryHDU(np.zeros((4, 4))), fits.ImageHDU(np.ones((2, 2)))]).writeto(image)
    with pytest.raises(ValueError, match=r"image.fits: no EVENTS table"):
        read_events(image)
    no_time = _write(tmp_path / "no_time.evt", _events_hdu([1.0, 2.0], columns=("T", "PI")))
    with pytest.raises(ValueError, match=r"no_time.evt: the EVENTS table has no TIME column .*'T', 'PI'"):
        read_events(no_time)
    with pytest.raises(
        ValueError, match=r"lcurveA.fits: HDU 'RATE' is a binned light curve .* read_lightcurve"
    ):
        read_events(DATA / "lcurveA.fits")
    with pytest.raises(
        ValueError,
        match=r"monol_testA.evt: HDU 'EVENTS' is an event list, not a light curve; use read_events",
    ):
        read_lightcurve(DATA / "monol_testA.evt")


def test_zero_events_and_events_outside_gtis(tmp_path):
    empty = _write(tmp_path / "empty.evt", _events_hdu([]), _gti_hdu(0.0, 10.0))
    with pytest.raises(ValueError, match=r"empty.evt: the event file holds no events"):
        read_events(empty)
    outside = _write(tmp_path / "outside.evt", _events_hdu(np.linspace(0, 10, 50)), _gti_hdu(100.0, 200.0))
    with pytest.raises(ValueError, match=r"outside.evt: all 50 events lie outside the GTIs"):
        read_events(outside)


def test_missing_keywords_stingray_needs(tmp_path):
    """A hand-made file without TSTART, TSTOP and MJDREF: read from a patched copy, and said so."""
    bare = _events_hdu([1.0, 2.0, 7.5])
    for key in ("TSTART", "TSTOP", "MJDREF"):
        del bare.header[key]
    ev = read_events(_write(tmp_path / "bare.evt", bare, _gti_hdu(0.5, 10.0)))
    assert ev.n_events_kept == 3
    assert ev.exposure == 9.5
    assert ev.mjdref is None
    assert any("TSTART" in n and "MJDREF" in n for n in ev.notes)


def test_energy_errors():
    with pytest.raises(ValueError, match=r"xmm_test.fits: no event in energy_range = \(3.0, 10.0\) keV"):
        read_events(DATA / "xmm_test.fits", energy_range=(3.0, 10.0))
    with pytest.raises(ValueError, match=r"nomission.evt: energy_range .* only PI channels .* use pi_range"):
        read_events(DATA / "nomission.evt", energy_range=(3.0, 10.0))
    with pytest.raises(ValueError, match="energy_range must be finite with low < high"):
        read_events(DATA / "monol_testA.evt", energy_range=(10.0, 3.0))


def test_segment_longer_than_every_gti(events):
    with pytest.raises(
        ValueError,
        match=r"monol_testA.evt: the segment length 2048 s is longer than every GTI .* longest GTI is 1025 s",
    ):
        observation_spectrum(events("monol_testA.evt"), dt=1.0, segment_size=2048.0)


def test_gzip_light_curve_and_types(tmp_path):
    gz = tmp_path / "lcurveA.fits.gz"
    gz.write_bytes(gzip.compress((DATA / "lcurveA.fits").read_bytes()))
    lc = read_lightcurve(gz)
    assert isinstance(lc, BinnedLightCurve)
    assert lc.counts.size == 1025
    with pytest.raises(ValueError, match="source must be an EventData or a BinnedLightCurve"):
        observation_spectrum(lc.counts, dt=1.0, segment_size=64.0)


def test_dead_time_detectors_count_independent_dead_times():
    """NICER's modules and RXTE's PCUs each have their own dead time (a summed file acts as one detector
    with tau / n); NuSTAR's four chips share their module's: one per file whatever DET_ID says."""
    from xtml.timing.io import dead_time_detectors

    def events(mission, n):
        return EventData(
            path="x", times=np.zeros(1), gti=np.array([[0.0, 1.0]]), t_ref=0.0, mission=mission, n_detectors=n
        )

    assert dead_time_detectors(events("nicer", 47)) == 47
    assert dead_time_detectors(events("xte", 3)) == 3
    assert dead_time_detectors(events("nustar", 4)) == 1
    assert dead_time_detectors(events("xmm", None)) == 1
