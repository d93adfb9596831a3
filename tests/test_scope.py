"""The scope gate flags data unlike the training set, and rarely flags data like it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xtml.critique.run_scope import score_inputs
from xtml.critique.scope import ScopeGate, TrainingDomain, gap_reasons, log_spectral_features
from xtml.psd import Lorentzian, PSDModel, ZeroCentredLorentzian
from xtml.simulate import poisson_counts, simulate_rate
from xtml.timing import periodogram, rebin_log

DT = 1 / 128
SEG = 1024  # 8 s segments
N_SEG = 4
MODEL = PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()})


def _theta(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.column_stack(
        [
            np.exp(rng.uniform(np.log(0.5), np.log(5.0), n)),  # broad.nu_max
            rng.uniform(0.05, 0.25, n),  # broad.rms
            np.exp(rng.uniform(np.log(2.0), np.log(20.0), n)),  # qpo.nu0
            np.exp(rng.uniform(np.log(3.0), np.log(20.0), n)),  # qpo.q
            rng.uniform(0.05, 0.2, n),  # qpo.rms
        ]
    )


def _spectra(
    n: int, seed: int, *, rates: tuple[float, float] = (200.0, 2000.0), seg: int = SEG, artefact: str = ""
) -> tuple:
    """Features, mean rates and the rebinned spectrum of ``n`` simulated observations."""
    rng = np.random.default_rng(seed)
    rate = np.exp(rng.uniform(np.log(rates[0]), np.log(rates[1]), n))
    r, _ = simulate_rate(MODEL, _theta(n, rng), mean_rate=rate, dt=DT, n_bins=seg * N_SEG, rng=rng)
    t = np.arange(seg * N_SEG) * DT
    if artefact == "pulsar":
        # a coherent 50 Hz signal of 30 % pulsed fraction, beyond every QPO of the prior (at 20 %, 80 % of
        # them are flagged: a weak narrow signal in one wide log bin looks like a narrow QPO)
        r = r * (1 + 0.3 * np.sin(2 * np.pi * 50.0 * t))
    counts = poisson_counts(r, DT, rng)
    if artefact == "gap":  # 6 s of data lost and left as zeros inside the second segment
        counts[:, seg + 100 : seg + 100 + 768] = 0
    ps = rebin_log(periodogram(counts, DT, norm="leahy", segment_bins=seg), 0.05)
    return log_spectral_features(ps.power, ps.mean_rate), ps.mean_rate, ps, counts


@pytest.fixture(scope="module")
def fitted() -> tuple[ScopeGate, object]:
    x, rate, ps, _ = _spectra(3000, 1)
    domain = TrainingDomain(
        freq=ps.freq, m=ps.m, segment_length=SEG * DT, norm="leahy", rate_range=(rate.min(), rate.max())
    )
    return ScopeGate(alpha=0.01).fit(x, domain), ps


def test_held_out_in_distribution_rarely_flagged(fitted: tuple) -> None:
    gate, ps = fitted
    x, rate, _, counts = _spectra(2000, 2)
    result = score_inputs(
        gate, x, mean_rate=rate, freq=ps.freq, m=ps.m, segment_length=SEG * DT, norm="leahy"
    )
    rate_flagged = result.n_out / 2000
    assert rate_flagged < 0.05  # the target; alpha = 1 % is the design
    # the p-values of in-distribution data are close to uniform: about 10 % below 0.1
    assert 0.05 < np.mean(result.p_value < 0.1) < 0.15
    # and the gap check finds no gap in gap-free Poisson light curves of 200-2000 ct/s
    assert sum(bool(r) for r in gap_reasons(counts, DT)) <= 2


def test_pulsar_flagged(fitted: tuple) -> None:
    gate, _ = fitted
    x, _, _, _ = _spectra(300, 3, artefact="pulsar")
    result = gate.score(x)
    assert result.n_out / 300 > 0.9
    flagged = [r for r in result.reasons if r]
    assert all("scope p =" in r[0] for r in flagged)  # every flag names its reason


def test_gap_flagged(fitted: tuple) -> None:
    gate, _ = fitted
    x, _, _, counts = _spectra(300, 3, artefact="gap")
    reasons = gap_reasons(counts, DT)
    assert all(reasons)
    assert "a gap of 6 s without counts at t = 8.781 s" in reasons[0][0]
    # the spectral gate alone catches few of them: a 6 s gap in one of four 8 s segments looks like red
    # noise of the strength the training spectra have, which is why the time-domain check exists
    assert gate.score(x).n_out / 300 < 0.5


def test_rate_ten_times_outside_training_flagged(fitted: tuple) -> None:
    gate, _ps = fitted
    x, rate, _, _ = _spectra(300, 4, rates=(20_000.0, 30_000.0))  # 10 times the top of the training range
    result = score_inputs(gate, x, mean_rate=rate)
    assert result.n_out == 300  # the domain check alone flags every one
    assert any("mean count rate" in why for why in result.reasons[0])
    # and the features alone (no help from the domain check) flag most of them: 87 % when measured
    assert gate.score(x).n_out / 300 > 0.8


def test_other_segment_length_flagged(fitted: tuple) -> None:
    gate, _ps = fitted
    x, rate, other, _ = _spectra(20, 5, seg=2 * SEG)
    result = score_inputs(gate, x, mean_rate=rate, freq=other.freq, m=other.m, segment_length=2 * SEG * DT)
    assert result.n_out == 20
    joined = " ".join(result.reasons[0])
    assert "segment length 16 s differs from the training 8 s" in joined
    assert "frequency grid" in joined


def test_json_round_trip_same_scores(fitted: tuple) -> None:
    gate, _ = fitted
    x, _, _, _ = _spectra(50, 6)
    again = ScopeGate.from_dict(json.loads(json.dumps(gate.to_dict())))
    a, b = gate.score(x), again.score(x)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(a.in_scope, b.in_scope)
    assert again.domain_ is not None
    assert again.domain_.rate_range == gate.domain_.rate_range


def test_bad_input_named() -> None:
    with pytest.raises(ValueError, match=r"row 0, bin 1 holds 0.0"):
        log_spectral_features(np.array([[1.0, 0.0, 2.0]]))
    with pytest.raises(RuntimeError, match="not fitted"):
        ScopeGate().score(np.zeros((2, 3)))
    x = np.random.default_rng(0).normal(size=(100, 5))
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        ScopeGate().fit(x)
    gate = ScopeGate().fit(np.random.default_rng(0).normal(size=(100, 5)))
    with pytest.raises(ValueError, match="fitted on 5 features per input; got 4"):
        gate.score(np.zeros((1, 4)))
    bad = gate.score(np.array([[0.0, np.inf, 0.0, 0.0, 0.0]]))
    assert not bad.in_scope[0]
    assert "non-finite features" in bad.reasons[0]
    with pytest.raises(ValueError, match=r"rate_range must be 0 < low <= high"):
        TrainingDomain(freq=np.ones(3), m=np.ones(3), segment_length=1.0, norm="leahy", rate_range=(5, 1))
    with pytest.raises(ValueError, match="newer than this xtml"):
        ScopeGate.from_dict(gate.to_dict() | {"format_version": 99})


def test_gaps_are_cut_out_of_an_event_files_gtis(rng) -> None:
    """A 1.5 s telemetry drop-out inside a GTI of 200 ct/s events is found and cut out (GTI split, exposure
    down by about the gap); gap-free events keep their GTIs; the scope check then finds nothing."""
    from xtml.timing import EventData
    from xtml.timing.gaps import gti_without_gaps

    times = np.sort(rng.uniform(0, 20, 4000))
    holed = times[(times < 7.0) | (times > 8.5)]
    events = EventData(path="x.evt", times=holed, gti=np.array([[0.0, 20.0]]), t_ref=0.0, mission="nustar")
    cut, notes = gti_without_gaps(events)
    assert len(notes) == 1
    assert "a gap of 1.5" in notes[0]
    assert cut.gti.shape == (2, 2)
    np.testing.assert_allclose(cut.gti[0, 1], 7.0, atol=1 / 32)
    np.testing.assert_allclose(cut.gti[1, 0], 8.5, atol=1 / 32)
    assert cut.exposure == pytest.approx(18.5, abs=1 / 16)
    for a, b in cut.gti:  # no flagged gap is left in what remains
        inside = cut.times[(cut.times >= a) & (cut.times < b)]
        counts = np.histogram(inside, bins=a + np.arange(int((b - a) * 64) + 1) / 64)[0]
        assert gap_reasons(counts, 1 / 64) == [[]]
    whole = EventData(path="y.evt", times=times, gti=np.array([[0.0, 20.0]]), t_ref=0.0, mission="nustar")
    same, none = gti_without_gaps(whole)
    assert same is whole
    assert none == []
