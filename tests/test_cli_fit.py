"""`xtml fit`: a FITS event file and a dataset row in, a fit table (and a plot) out."""

import json

import numpy as np
from astropy.io import fits

from xtml.cli import main
from xtml.psd import Lorentzian, PSDModel, ZeroCentredLorentzian
from xtml.simulate import events_from_rate, simulate_rate


def _write_event_file(path, times, gti, t0=3.0e8):
    events = fits.BinTableHDU.from_columns(
        [fits.Column(name="TIME", format="1D", array=times + t0)], name="EVENTS"
    )
    gtis = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="START", format="1D", array=gti[:, 0] + t0),
            fits.Column(name="STOP", format="1D", array=gti[:, 1] + t0),
        ],
        name="GTI",
    )
    for hdu in (events, gtis):
        hdu.header.update(
            TELESCOP="TEST", INSTRUME="SIM", MJDREFI=55000, MJDREFF=0.0, TIMESYS="TT", TIMEUNIT="s"
        )
        hdu.header.update(TSTART=t0 + gti[0, 0], TSTOP=t0 + gti[-1, 1])
    fits.HDUList([fits.PrimaryHDU(), events, gtis]).writeto(path)


def test_fit_an_event_file_recovers_the_qpo(tmp_path, capsys):
    psd = PSDModel.from_components({"broad": ZeroCentredLorentzian(), "qpo": Lorentzian()})
    truth = np.array([1.0, 0.1, 12.0, 8.0, 0.15])
    dt, length = 1 / 256, 512.0
    rate, _ = simulate_rate(psd, truth, mean_rate=600.0, dt=dt, n_bins=int(length / dt), rng=5)
    (times,) = events_from_rate(rate, dt, 6)
    path = tmp_path / "sim.evt"
    _write_event_file(path, times, np.array([[0.0, length]]))
    code = main(
        [
            "fit",
            str(path),
            "--model",
            "broad=zero_lorentzian,qpo=lorentzian",
            "--segment-size",
            "16",
            "--rebin-log",
            "0.02",
            "--n-sim",
            "20",
            "--alpha",
            "0.05",
            "--json",
            "--plot",
            str(tmp_path / "fit.png"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out[: out.rindex("}") + 1])
    assert result["status"] == "ok"
    nu0, err = result["params"]["qpo.nu0"], result["errors"]["qpo.nu0"]
    assert abs(nu0 - 12.0) < 4 * err
    assert abs(result["params"]["qpo.rms"] - 0.15) < 4 * result["errors"]["qpo.rms"]
    assert (tmp_path / "fit.png").stat().st_size > 1000
    (qpo,) = result["components"]  # 15 % rms at 600 ct/s: beyond every simulation without it
    assert qpo["component"] == "qpo"
    assert qpo["required"]
    assert qpo["p_calibrated"] == 1 / 21
    assert result["dead_time"]["source"].startswith("none: the file states no dead time")


def test_fit_a_dataset_row_and_errors(tmp_path, capsys):
    from xtml.data import load_config, simulate_dataset
    from xtml.demo import default_config_path

    ds = simulate_dataset(load_config(default_config_path()), 2, tmp_path / "d.zarr", progress=False)
    assert main(["fit", str(ds), "--index", "1", "--model", "broad=zero_lorentzian"]) in (0, 1)
    assert "broad.nu_max" in capsys.readouterr().out
    assert main(["fit", str(ds), "--index", "5", "--model", "broad=zero_lorentzian"]) == 2
    assert "--index must be in [0, 2)" in capsys.readouterr().err
    assert main(["fit", str(ds), "--model", "broad:zero_lorentzian"]) == 2
    assert "name=kind pairs" in capsys.readouterr().err
    bad = tmp_path / "bad.evt"
    bad.write_text("not a fits file")
    assert main(["fit", str(bad), "--model", "broad=zero_lorentzian"]) == 2
    assert "bad.evt: cannot read as a FITS event file" in capsys.readouterr().err


def test_fit_a_dead_time_dataset_is_dead_time_aware(tmp_path, capsys):
    """A dataset with dead time: `xtml fit` uses the Zhang model by default, or fits the FAD spectrum."""
    from pathlib import Path

    from xtml.data import load_config, simulate_dataset

    config = load_config(Path(__file__).parents[1] / "configs" / "nustar_deadtime.toml")
    path = tmp_path / "dt.zarr"
    simulate_dataset(config, 1, path, progress=False)
    args = ["fit", str(path), "--model", "broad=zero_lorentzian,qpo=lorentzian", "--json", "--n-sim", "0"]
    assert main(args) in (0, 1)
    out = capsys.readouterr().out
    zhang = json.loads(out[out.index("{") :])
    assert zhang["params"]["noise.level"] > 1.5  # Zhang's shape rescaled by ~2, not a flat ~0.5-1.5 level
    assert main([*args, "--dead-time", "0"]) in (0, 1)
    naive = json.loads(capsys.readouterr().out)
    assert naive["loglike"] < zhang["loglike"] - 10  # ignoring dead time fits much worse
    assert main([*args, "--spectrum", "power_fad"]) in (0, 1)
    fad = json.loads(capsys.readouterr().out)
    assert abs(fad["params"]["noise.level"] - 2.0) < 0.2


def _stingray_data(name):
    import os

    import stingray

    return os.path.join(os.path.dirname(stingray.__file__), "tests", "data", name)


def test_fit_says_when_a_lorentzian_is_not_required(capsys):
    """The RXTE file of M82 (Stingray's test data, 99 s at 34.5 ct/s): a 'QPO' at ~16 Hz fits at its
    largest quality factor and improves AIC by a fraction of a unit; its calibrated likelihood-ratio test
    says the data do not require it, instead of a bare fit status."""
    code = main(
        [
            "fit",
            _stingray_data("xte_gx_test.evt.gz"),
            "--model",
            "broad=zero_lorentzian,qpo=lorentzian",
            "--dt",
            "0.0078125",
            "--segment-size",
            "16",
            "--rebin-log",
            "0.05",
            "--n-sim",
            "20",
            "--alpha",
            "0.05",
        ]
    )
    out = capsys.readouterr().out
    assert code in (0, 1)  # 1: the QPO's fit ends at a bound (Q = 200)
    assert "qpo: NOT required by the data" in out
    p = float(out.split("calibrated p = ")[1].split(" ")[0])
    assert p > 0.05


def test_fit_light_curves_truth_and_refusals(tmp_path, capsys):
    """A light curve (Stingray's ASCII sample) is fitted like an event file; --energy is for events,
    --truth for datasets; a dead time the detected rate makes impossible is refused, not fitted."""
    from xtml.data import load_config, simulate_dataset
    from xtml.demo import default_config_path

    lc = _stingray_data("../../datasets/lc_sample.txt")
    base = ["fit", lc, "--model", "red=powerlaw", "--dt", "0.125", "--segment-size", "64", "--n-sim", "0"]
    assert main(base) in (0, 1)
    out = capsys.readouterr().out
    assert "red.index" in out
    assert "dead time 0 s x 1 module(s), from none" in out
    assert main([*base, "--energy", "3", "10"]) == 2
    assert "a binned light curve has its band already" in capsys.readouterr().err
    assert main([*base, "--truth"]) == 2
    assert "--truth prints the true parameters of a simulated row" in capsys.readouterr().err
    assert main([*base, "--dead-time", "0.01"]) == 2  # ~19,000 ct/s x 0.01 s
    assert "which no incident rate can produce" in capsys.readouterr().err
    ds = simulate_dataset(load_config(default_config_path()), 2, tmp_path / "d.zarr", progress=False)
    assert main(["fit", str(ds), "--index", "1", "--model", "broad=zero_lorentzian", "--truth"]) in (0, 1)
    out = capsys.readouterr().out
    assert "truth: class: " in out
    assert "broad.nu_max = " in out.split("truth:")[1]
