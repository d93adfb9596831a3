"""xtml.reference: dead-time and pile-up references against Stingray, exact limits and simulations."""

import itertools

import numpy as np
import pytest

from xtml.reference import (
    detected_event_rate,
    detected_rate,
    incident_rate,
    photon_loss_fraction,
    pileup_fraction,
    zhang_coefficients,
    zhang_leahy,
    zhang_leahy_at,
    zhang_leahy_for_spectrum,
)
from xtml.timing import periodogram

KINDS = ["nonparalyzable", "paralyzable"]


@pytest.fixture(scope="module")
def pds_model_zhang():
    """Stingray's function, compiled once on a small input (numba compiles it on the first call)."""
    from stingray.deadtime.model import pds_model_zhang

    pds_model_zhang(16, 500.0, 2.5e-3, 1 / 512)
    return pds_model_zhang


# --------------------------------------------------------------------------------------------------------
# detected and incident rates
# --------------------------------------------------------------------------------------------------------


def test_detected_rate_closed_forms():
    r = np.array([[10.0], [500.0], [5000.0]])
    tau = np.array([1e-4, 2.5e-3])
    nonpar = detected_rate(r, tau)
    par = detected_rate(r, tau, kind="paralyzable")
    assert nonpar.shape == par.shape == (3, 2)
    np.testing.assert_allclose(nonpar, r / (1 + r * tau), rtol=1e-15)
    np.testing.assert_allclose(par, r * np.exp(-r * tau), rtol=1e-15)
    assert detected_rate(500.0, 0.0) == 500.0
    assert detected_rate(0.0, 1e-3, "paralyzable") == 0.0
    # the two kinds agree to first order in r tau
    np.testing.assert_allclose(detected_rate(1.0, 1e-6), detected_rate(1.0, 1e-6, "paralyzable"), rtol=1e-11)


@pytest.mark.parametrize("kind", KINDS)
def test_incident_rate_inverts_detected_rate(kind):
    tau = np.array([0.0, 1e-6, 1e-4, 2.5e-3])[:, None]
    r = np.geomspace(1e-3, 1.0, 25)[None, :] / np.where(tau > 0, tau, 1e-3)  # r tau up to 1
    back = incident_rate(detected_rate(r, tau, kind), tau, kind)
    np.testing.assert_allclose(back, r, rtol=1e-7 if kind == "paralyzable" else 1e-13)
    np.testing.assert_allclose(back[:, :20], r[:, :20], rtol=1e-12)  # away from the r tau = 1 branch point


def test_incident_rate_limits_and_errors():
    td = 2.5e-3
    assert incident_rate(1 / (np.e * td), td, "paralyzable") == pytest.approx(1 / td, rel=1e-6)
    with pytest.raises(ValueError, match=r"detected \* dead_time must be <= 1/e"):
        incident_rate(1.01 / (np.e * td), td, "paralyzable")
    with pytest.raises(ValueError, match="detected must be < 1 / dead_time"):
        incident_rate([100.0, 400.0], td)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: detected_rate(-1.0, 1e-3), "rate must be finite and >= 0 ct/s, got -1.0"),
        (lambda: detected_rate([1.0, np.inf], 1e-3), "rate must be finite"),
        (lambda: detected_rate(1.0, np.nan), "dead_time must be finite and >= 0 s, got nan"),
        (lambda: incident_rate(1.0, -1e-3, "paralyzable"), "dead_time must be finite"),
        (lambda: detected_rate(1.0, 1e-3, kind="extendable"), "nonparalyzable, paralyzable.*'extendable'"),
        (lambda: incident_rate(1.0, 1e-3, kind="Paralyzable"), "nonparalyzable, paralyzable"),
        (lambda: zhang_leahy(1, 500.0, 2.5e-3, 1 / 512), "n_bins must be an integer >= 2, got 1"),
        (lambda: zhang_leahy(64.0, 500.0, 2.5e-3, 1 / 512), "n_bins must be an integer"),
        (lambda: zhang_leahy_for_spectrum(2, 500.0, 2.5e-3, 1 / 512), "n_bins must be an integer >= 3"),
        (lambda: zhang_leahy(64, 0.0, 2.5e-3, 1 / 512), "rate must be a finite number > 0 ct/s"),
        (lambda: zhang_leahy(64, 500.0, -1.0, 1 / 512), "dead_time must be a finite number >= 0 s"),
        (lambda: zhang_leahy(64, 500.0, 2.5e-3, 0.0), "bin_time must be a finite number > 0 s"),
        (lambda: zhang_leahy(64, 500.0, 2.5e-3, 1 / 512, limit_k=0), "limit_k must be an integer >= 1"),
        (
            lambda: zhang_leahy(64, 400.0, 2.5e-3, 1 / 512, rate_is_incident=False),
            r"rate \(detected\) must be < 1 / dead_time",
        ),
        (lambda: zhang_leahy_at([1.0, np.nan], 64, 500.0, 2.5e-3, 1 / 512), "freq must be finite"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------------------------------------
# Zhang et al. (1995): equality with Stingray, grid mapping, exact limits
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_bins", "rate", "dead_time", "bin_time", "rate_is_incident"),
    [
        (512, 500.0, 2.5e-3, 1 / 512, True),  # NuSTAR-like
        (256, 500.0, 2.5e-3, 1 / 256, True),
        (512, 222.0, 2.5e-3, 1 / 512, False),  # the detected rate of the first case
        (255, 2000.0, 1e-3, 1 / 1024, True),  # odd N: Stingray's frequency grid is j / ((N - 1) tb)
        (24, 300.0, 1e-4, 1e-3, False),  # bin time 10 dead times (slow in Stingray: small N)
        (40, 5000.0, 2.5e-3, 1 / 512, True),  # N < limit_k: lags stop at N - 1
    ],
)
def test_zhang_leahy_equals_stingray(pds_model_zhang, n_bins, rate, dead_time, bin_time, rate_is_incident):
    f_ref, p_ref = pds_model_zhang(n_bins, rate, dead_time, bin_time, 60, rate_is_incident)
    freq, power = zhang_leahy(n_bins, rate, dead_time, bin_time, rate_is_incident=rate_is_incident)
    np.testing.assert_array_equal(freq, f_ref)
    np.testing.assert_allclose(power, p_ref, rtol=1e-8)


def test_zhang_leahy_equals_stingray_short_limit_k(pds_model_zhang):
    f_ref, p_ref = pds_model_zhang(300, 500.0, 2.5e-3, 1 / 512, limit_k=7)
    freq, power = zhang_leahy(300, 500.0, 2.5e-3, 1 / 512, limit_k=7)
    np.testing.assert_array_equal(freq, f_ref)
    np.testing.assert_allclose(power, p_ref, rtol=1e-8)


def test_zhang_coefficients_exact_in_high_precision():
    """B_k against Zhang's Eqs. 34-45 summed term by term in 40-digit arithmetic."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    rate, td, tb, n_k = mp.mpf(300), mp.mpf("1e-4"), mp.mpf("1e-3"), 6
    tau = 1 / rate
    r0 = 1 / (tau + td)

    def h(k, n):
        x = (k * tb - n * td) / tau
        if x < 0:
            return mp.mpf(0)
        g = mp.fsum(mp.exp(-x) * x**m / mp.factorial(m) * (n - m) for m in range(n))
        return k - n * (td + tau) / tb + tau / tb * g

    s = [mp.fsum(h(k, n) for n in range(1, int(k * tb / td) + 2)) for k in range(n_k + 1)]
    b_exact = [2 * (1 + 2 * s[1]) - 2 * r0 * tb]
    b_exact += [4 * (s[k + 1] - 2 * s[k] + s[k - 1]) - 4 * r0 * tb for k in range(1, n_k)]
    b = zhang_coefficients(300.0, 1e-4, 1e-3, limit_k=n_k)
    np.testing.assert_allclose(b, np.array(b_exact, dtype=float), rtol=0, atol=1e-13)


@pytest.mark.parametrize("n_bins", [4096, 1001])
def test_grid_mapping_to_xtml_spectrum(n_bins):
    """Stingray's index is j itself (from 0); an xtml PowerSpectrum holds j = 1 .. (N - 1) // 2."""
    args = (500.0, 2.5e-3, 1 / 512)
    p = zhang_leahy_for_spectrum(n_bins, *args)
    assert p.shape == ((n_bins - 1) // 2,)
    j = np.arange(1, (n_bins - 1) // 2 + 1)
    np.testing.assert_allclose(zhang_leahy_at(j / (n_bins * args[2]), n_bins, *args), p, rtol=1e-11)
    _, stingray_like = zhang_leahy(n_bins, *args)
    np.testing.assert_allclose(p[: stingray_like.size - 1], stingray_like[1:], rtol=1e-12)
    freq = periodogram(np.ones((1, n_bins)), args[2]).freq
    np.testing.assert_allclose(freq, j / (n_bins * args[2]), rtol=1e-14)


def test_zhang_exact_limits():
    # no dead time: pure Poisson, flat at 2
    np.testing.assert_allclose(zhang_leahy(256, 500.0, 0.0, 1 / 512)[1], 2.0, rtol=0, atol=1e-14)
    # one lag: flat at B_0
    b0 = zhang_coefficients(500.0, 2.5e-3, 1 / 512, limit_k=1)[0]
    np.testing.assert_allclose(zhang_leahy(256, 500.0, 2.5e-3, 1 / 512, limit_k=1)[1], b0, rtol=1e-15)
    # zero frequency, long segment: 2 x Fano factor of a non-paralyzable renewal process, 2 / (1 + r tau)^2
    for rate, td, tb in [(500.0, 2.5e-3, 1 / 512), (2000.0, 1e-3, 1 / 256), (100.0, 2.5e-3, 1 / 128)]:
        p0 = zhang_leahy_at(0.0, 2**20, rate, td, tb, limit_k=200)
        assert p0 == pytest.approx(2 / (1 + rate * td) ** 2, rel=1e-4)
    # incident vs detected rate give the same model
    r_det = float(detected_rate(500.0, 2.5e-3))
    np.testing.assert_allclose(
        zhang_leahy_for_spectrum(512, r_det, 2.5e-3, 1 / 512, rate_is_incident=False),
        zhang_leahy_for_spectrum(512, 500.0, 2.5e-3, 1 / 512),
        rtol=1e-10,  # tau = 1/r - td and 1/r differ in the last bits; cancellations amplify that
    )


# --------------------------------------------------------------------------------------------------------
# physics: simulated dead-time-affected Poisson noise
# --------------------------------------------------------------------------------------------------------


def _poisson_events(rng, rate, span):
    return np.sort(rng.uniform(0.0, span, rng.poisson(rate * span)))


def test_zhang_leahy_matches_simulated_nustar_noise(seed):
    from stingray.filters import filter_for_deadtime

    rate, td, dt, seg_bins, n_seg = 500.0, 2.5e-3, 1 / 512, 4096, 128  # 128 segments of 8 s
    rng = np.random.default_rng(seed)
    events = filter_for_deadtime(_poisson_events(rng, rate, n_seg * seg_bins * dt), td)
    counts = np.bincount((events / dt).astype(np.int64), minlength=n_seg * seg_bins)[: n_seg * seg_bins]
    avg = periodogram(counts, dt, norm="leahy", segment_bins=seg_bins)
    each = periodogram(counts.reshape(n_seg, seg_bins), dt, norm="leahy")  # for the scatter
    model = zhang_leahy_for_spectrum(seg_bins, rate, td, dt)
    edges = np.linspace(0, model.size, 17).astype(int)  # 16 bands of 128 frequencies
    bands = list(itertools.pairwise(edges))
    obs = np.array([avg.power[0, a:b].mean() for a, b in bands])
    mod = np.array([model[a:b].mean() for a, b in bands])
    per_seg = np.stack([each.power[:, a:b].mean(axis=1) for a, b in bands])  # (16, n_seg)
    sigma = per_seg.std(axis=1, ddof=1) / np.sqrt(n_seg)
    z = (obs - mod) / sigma
    assert np.all(np.abs(z) < 3), z
    # the test has power: the model spans 0.4 .. 2.3 and the Poisson level 2 is excluded everywhere
    assert mod[0] < 0.45
    assert mod[-1] > 2.25
    assert np.all(np.abs(obs - 2.0) / sigma > 5)
    # the model from the measured (detected) mean rate agrees as well
    from_detected = zhang_leahy_for_spectrum(seg_bins, avg.mean_rate[0], td, dt, rate_is_incident=False)
    np.testing.assert_allclose(from_detected, model, rtol=0.01)


@pytest.mark.parametrize("kind", KINDS)
def test_detected_rate_matches_simulation(seed, kind):
    from stingray.filters import filter_for_deadtime

    rng = np.random.default_rng(seed)
    n_chunks = 20
    for rate in [10.0, 300.0, 5000.0]:
        for td in [1e-4, 1e-3, 2.5e-3]:
            expected = float(detected_rate(rate, td, kind))
            if rate / expected > 200:  # paralyzable, r tau = 12.5: r_d = 0.02 ct/s needs ~1e9 incident events
                continue
            span = 20_000 / expected  # ~20,000 detected events
            events = filter_for_deadtime(
                _poisson_events(rng, rate, span), td, paralyzable=kind == "paralyzable"
            )
            chunk_rates = np.bincount((events / (span / n_chunks)).astype(int), minlength=n_chunks)[:n_chunks]
            chunk_rates = chunk_rates / (span / n_chunks)
            sigma = chunk_rates.std(ddof=1) / np.sqrt(n_chunks)
            assert abs(events.size / span - expected) < 3 * sigma, (rate, td, events.size / span, expected)


# --------------------------------------------------------------------------------------------------------
# pile-up
# --------------------------------------------------------------------------------------------------------


def test_pileup_small_lambda_limits():
    lam = np.array([0.0, 1e-300, 1e-12, 1e-9, 1e-8])  # the next terms are below 1e-16 relative
    np.testing.assert_allclose(pileup_fraction(lam, 1.0), lam / 2 - lam**2 / 12, rtol=1e-14, atol=0)
    np.testing.assert_allclose(photon_loss_fraction(lam, 1.0), lam / 2 - lam**2 / 6, rtol=1e-14, atol=0)
    np.testing.assert_allclose(detected_event_rate(lam, 1.0), lam - lam**2 / 2, rtol=1e-14, atol=0)
    # frame time enters through lambda = r t_f, the event rate also through 1 / t_f
    assert pileup_fraction(2e-8, 0.5) == pytest.approx(5e-9, rel=1e-8)
    assert detected_event_rate(2e-8, 0.5) == pytest.approx(2e-8, rel=1e-7)


def test_pileup_closed_forms_and_saturation():
    lam = np.array([0.5, 0.999, 1.0, 1.001, 3.0, 40.0, 1e4])
    e = np.exp(-lam)
    np.testing.assert_allclose(pileup_fraction(lam, 1.0), (1 - e * (1 + lam)) / (1 - e), rtol=1e-14)
    np.testing.assert_allclose(photon_loss_fraction(lam, 1.0), 1 - (1 - e) / lam, rtol=1e-14)
    np.testing.assert_allclose(detected_event_rate(lam / 2.6, 2.6), (1 - e) / 2.6, rtol=1e-14)
    rate = np.array([[1.0], [10.0]])
    assert pileup_fraction(rate, [0.1, 2.6, 3.2]).shape == (2, 3)


def test_pileup_monte_carlo(rng):
    frame_time, n_frames, n_chunks = 2.6, 400_000, 20
    for rate in [0.02, 0.3, 1.5]:  # lambda = 0.052, 0.78, 3.9
        photons = rng.poisson(rate * frame_time, size=(n_chunks, n_frames // n_chunks))
        nonempty = (photons >= 1).sum(axis=1)
        piled = (photons >= 2).sum(axis=1)
        per_chunk = {
            pileup_fraction: piled / nonempty,
            detected_event_rate: nonempty / (photons.shape[1] * frame_time),
            photon_loss_fraction: 1 - nonempty / photons.sum(axis=1),
        }
        for fn, values in per_chunk.items():
            sigma = values.std(ddof=1) / np.sqrt(n_chunks)
            assert abs(values.mean() - fn(rate, frame_time)) < 3 * sigma, (fn.__name__, rate)


@pytest.mark.parametrize(
    ("rate", "frame_time", "match"),
    [
        (-1.0, 2.6, "rate must be finite and >= 0 ct/s, got -1.0"),
        (np.nan, 2.6, "rate must be finite"),
        (1.0, 0.0, "frame_time must be finite and > 0 s, got 0.0"),
        (1.0, [2.6, -1.0], "frame_time must be finite and > 0 s, got -1.0"),
        (1.0, np.inf, "frame_time must be finite"),
    ],
)
@pytest.mark.parametrize("fn", [pileup_fraction, detected_event_rate, photon_loss_fraction])
def test_pileup_bad_arguments(fn, rate, frame_time, match):
    with pytest.raises(ValueError, match=match):
        fn(rate, frame_time)
