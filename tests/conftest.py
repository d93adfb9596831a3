"""Shared fixtures: every random test draws from a fixed, explicit seed."""

import numpy as np
import pytest

SEED = 20261121

# stingray.modeling sets np.seterr("warn") for the whole process when first imported (tests compare with
# its likelihoods): underflow then warns, and pytest turns warnings into errors in whatever test runs
# next. Import it once here and restore numpy's defaults, so no test depends on the order of the others.
_NUMPY_ERRORS = np.geterr()
import stingray.modeling  # noqa: E402, F401

np.seterr(**_NUMPY_ERRORS)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@pytest.fixture
def seed() -> int:
    return SEED


# --- trained runs shared by the report and analyze tests (built once per session, on demand) ----------


@pytest.fixture(scope="session")
def learn_run(tmp_path_factory: pytest.TempPathFactory):
    """An evaluated detection run (logistic, random forest, gradient boosting; LRT on 40 test spectra)."""
    from test_learn_pipeline import TRAIN, _dataset
    from xtml.cli import main

    root = tmp_path_factory.mktemp("learn_run")
    data = _dataset(root, "data.zarr", 600, 0.05, 0.0005, 0.001)
    cnn = "[models.cnn]\nparams = { max_epochs = 30, patience = 4 }\ncv = false\n"
    (root / "train.toml").write_text(TRAIN.replace(cnn, ""))
    run = root / "run"
    assert (
        main(["train", str(root / "train.toml"), "--data", str(data), "--out", str(run), "--no-progress"])
        == 0
    )
    assert main(["evaluate", str(run), "--no-plots"]) == 0
    return run


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory: pytest.TempPathFactory):
    """`xtml demo --quick` once per session: its folder (the printed output in ``printed.txt``)."""
    import contextlib
    import io

    from xtml.cli import main

    out = tmp_path_factory.mktemp("quick_demo") / "demo"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["demo", "--out", str(out), "--quick", "--no-progress"])
    assert code == 0
    (out.parent / "printed.txt").write_text(buf.getvalue())
    return out


@pytest.fixture(scope="session")
def sbi_run(tmp_path_factory: pytest.TempPathFactory):
    """A tiny SBI run (scenario of tests/test_sbi_run.py: 800 simulations, NSF with an MLP embedding)."""
    pytest.importorskip("torch")
    from test_sbi_run import TINY
    from xtml.cli import main

    root = tmp_path_factory.mktemp("sbi_run")
    (root / "tiny.toml").write_text(TINY)
    run = root / "run"
    main(["sbi", "train", str(root / "tiny.toml"), "--out", str(run), "--threads", "1", "--no-progress"])
    return run


@pytest.fixture(scope="session")
def sbi_power_run(tmp_path_factory: pytest.TempPathFactory):
    """The tiny SBI scenario on the total power only (what event files give)."""
    pytest.importorskip("torch")
    from test_sbi_run import TINY
    from xtml.cli import main

    root = tmp_path_factory.mktemp("sbi_power_run")
    (root / "tiny.toml").write_text(
        TINY.replace('channels = ["power", "cospectrum"]', 'channels = ["power"]')
    )
    run = root / "run"
    main(["sbi", "train", str(root / "tiny.toml"), "--out", str(run), "--threads", "1", "--no-progress"])
    return run


# --- running on several processes (pytest-xdist, `make test`: -n 2 --dist loadgroup) ---------------------

#: The session fixtures that train a run: the tests that use them share one process (one xdist group), so
#: each run is built once, not once per worker.
SHARED_RUNS = frozenset({"learn_run", "quick_demo", "sbi_run", "sbi_power_run"})


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark the tests of a shared run with one xdist group (set as each item is collected, before xdist
    turns groups into scheduling scopes)."""
    if SHARED_RUNS & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.xdist_group("shared_runs"))
