"""1-D CNN estimators: scikit-learn's checks, known answers on Lorentzian bumps, calibration, determinism."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

torch = pytest.importorskip("torch")

from xtml.learn._torch_train import predict_batches  # noqa: E402
from xtml.learn.cnn import CNNClassifier, CNNRegressor, _train_val_split  # noqa: E402

N_BINS = 64  # short spectra keep the science tests fast
FAST = {"max_epochs": 40, "n_threads": 1, "random_state": 0, "lr": 3e-3, "batch_size": 64}


def _spectra(rng, n, *, bump, centroid=None, ratio=None, m=16):
    """Log-power spectra (n, N_BINS): red noise + white level, optional Lorentzian bump, Gamma(m, 1/m) noise.

    The bump is a Lorentzian of half-width 1.5 bins centred on ``centroid`` (bins) whose peak is ``ratio``
    times the continuum there; ``bump`` (n,) bool says which rows have it.
    """
    f = np.arange(1.0, N_BINS + 1)
    alpha = rng.uniform(1.0, 2.0, (n, 1))
    norm = 10 ** rng.uniform(0.5, 1.5, (n, 1))
    continuum = norm * f**-alpha + 2.0
    if centroid is None:
        centroid = rng.uniform(8.0, N_BINS - 8.0, n)
    if ratio is None:
        ratio = np.ones(n)
    nu0, r = centroid[:, None], ratio[:, None]
    lorentz = 1.5**2 / ((f - nu0) ** 2 + 1.5**2)
    level = norm * nu0**-alpha + 2.0
    s = continuum + np.asarray(bump)[:, None] * r * level * lorentz
    return np.log(s * rng.gamma(m, 1.0 / m, (n, N_BINS)))


@parametrize_with_checks(
    [
        CNNClassifier(max_epochs=30, n_threads=1, random_state=0, lr=1e-2, hidden=32),
        CNNRegressor(max_epochs=30, n_threads=1, random_state=0, lr=1e-2, hidden=32),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_classifier_finds_lorentzian_bumps(rng):
    n = 4000
    y = rng.integers(0, 2, n)
    X = _spectra(rng, n, bump=y, ratio=np.full(n, 2.0))  # peak 3x the continuum: ~7 sigma over 7 bins
    clf = CNNClassifier(**FAST).fit(X[:3000], y[:3000])
    auc = roc_auc_score(y[3000:], clf.predict_proba(X[3000:])[:, 1])
    assert auc > 0.99


def test_classifier_on_pure_noise_labels_is_at_chance(rng):
    n_train, n_test = 2000, 4000
    X = _spectra(rng, n_train + n_test, bump=np.zeros(n_train + n_test))
    y = rng.integers(0, 2, n_train + n_test)
    clf = CNNClassifier(**FAST).fit(X[:n_train], y[:n_train])
    auc = roc_auc_score(y[n_train:], clf.predict_proba(X[n_train:])[:, 1])
    assert abs(auc - 0.5) < 0.05  # sd of the AUC of a random score here is ~0.009


def test_regressor_recovers_centroid_and_amplitude_with_calibrated_std(rng):
    n, n_train = 6000, 4000
    centroid = rng.uniform(8.0, N_BINS - 8.0, n)
    log_ratio = rng.uniform(np.log(2.0), np.log(4.0), n)
    X = _spectra(rng, n, bump=np.ones(n), centroid=centroid, ratio=np.exp(log_ratio))
    Y = np.column_stack([centroid, log_ratio])
    reg = CNNRegressor(**FAST).fit(X[:n_train], Y[:n_train])
    mean, std = reg.predict(X[n_train:], return_std=True)
    assert mean.shape == std.shape == (n - n_train, 2)
    r2 = r2_score(Y[n_train:, 0], mean[:, 0])
    assert r2 > 0.9, r2
    z = np.abs(Y[n_train:] - mean) / std
    # A Gaussian puts 68.3 % within one sigma and 95.4 % within two (+-0.010 and +-0.005 from 2,000 rows).
    inside_1, inside_2 = np.mean(z < 1, axis=0), np.mean(z < 2, axis=0)
    assert np.all((inside_1 > 0.6) & (inside_1 < 0.76)), inside_1
    assert np.all((inside_2 > 0.92) & (inside_2 < 0.985)), inside_2
    np.testing.assert_allclose(reg.predict(X[n_train:]), mean)


def test_regressor_std_is_in_the_units_of_y(rng):
    n = 1000
    centroid = rng.uniform(8.0, N_BINS - 8.0, n)
    X = _spectra(rng, n, bump=np.ones(n), centroid=centroid)
    params = {**FAST, "max_epochs": 5}
    mean1, std1 = CNNRegressor(**params).fit(X, centroid).predict(X[:50], return_std=True)
    mean2, std2 = CNNRegressor(**params).fit(X, 1000 * centroid + 7).predict(X[:50], return_std=True)
    assert mean1.shape == std1.shape == (50,)
    np.testing.assert_allclose(mean2, 1000 * mean1 + 7, rtol=1e-5)
    np.testing.assert_allclose(std2, 1000 * std1, rtol=1e-5)


@pytest.mark.parametrize("Estimator", [CNNClassifier, CNNRegressor])
def test_same_seed_same_bytes_other_seed_differs(Estimator, rng):
    X = rng.normal(size=(300, 40))
    y = (X[:, 10:15].mean(axis=1) > 0).astype(int)
    params = {**FAST, "max_epochs": 3}
    a = Estimator(**params).fit(X, y)
    b = Estimator(**params).fit(X, y)
    c = Estimator(**{**params, "random_state": 1}).fit(X, y)
    method = "predict_proba" if Estimator is CNNClassifier else "predict"
    pa, pb, pc = (getattr(e, method)(X) for e in (a, b, c))
    assert pa.tobytes() == pb.tobytes()
    assert a.history_ == b.history_
    assert not np.array_equal(pa, pc)
    # A row's prediction does not depend on the rows predicted with it, to the bit.
    assert getattr(a, method)(X[7:8]).tobytes() == pa[7:8].tobytes()


def test_without_validation_the_training_loss_is_monitored(rng):
    X = rng.normal(size=(200, 16))
    y = X[:, 3] + 0.1 * rng.normal(size=200)
    reg = CNNRegressor(**{**FAST, "max_epochs": 4, "validation_fraction": 0.0}).fit(X, y)
    assert set(reg.history_) == {"train_loss"}
    assert reg.best_loss_ == reg.history_["train_loss"][reg.best_epoch_]
    np.testing.assert_array_equal(reg.std_scale_, [1.0])


def test_global_torch_rng_and_threads_are_left_alone(rng):
    X = rng.normal(size=(100, 16))
    y = rng.integers(0, 2, 100)
    threads = torch.get_num_threads()
    state = torch.get_rng_state()
    clf = CNNClassifier(**{**FAST, "max_epochs": 2, "dropout": 0.5}).fit(X, y)
    clf.predict(X)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_early_stopping_stops_and_keeps_the_best_weights(rng):
    n = 2000
    y = rng.integers(0, 2, n)
    X = _spectra(rng, n, bump=y, ratio=np.full(n, 2.0))
    clf = CNNClassifier(**{**FAST, "max_epochs": 200, "patience": 3}).fit(X, y)
    val = clf.history_["val_loss"]
    assert clf.n_iter_ < 200
    assert len(val) == len(clf.history_["train_loss"]) == clf.n_iter_
    assert clf.n_iter_ == clf.best_epoch_ + 1 + clf.patience
    assert clf.best_loss_ == min(val) == val[clf.best_epoch_] < val[-1]
    # The kept network scores best_loss_ on the validation rows again (the split is reproducible).
    seed = np.random.RandomState(FAST["random_state"]).randint(np.iinfo(np.int32).max)
    _, val_idx = _train_val_split(n, y, clf.validation_fraction, seed)
    assert np.abs(np.bincount(y[val_idx]) - val_idx.size * np.bincount(y) / n).max() <= 1  # stratified
    logits = predict_batches(clf.module_, clf._standardise(X[val_idx]))
    loss = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[val_idx])))
    assert loss == pytest.approx(clf.best_loss_, rel=1e-5)


@pytest.mark.parametrize("n_features", [1, 2, 3, 5, 17])
def test_sequences_shorter_than_the_receptive_field(n_features, rng):
    X = rng.normal(size=(60, n_features))
    y = X[:, 0] + 0.1 * rng.normal(size=60)
    reg = CNNRegressor(**{**FAST, "max_epochs": 2, "n_blocks": 4, "stride": 4, "kernel_size": 9})
    mean, std = reg.fit(X, y).predict(X, return_std=True)
    assert np.isfinite(mean).all()
    assert (std > 0).all()


def test_module_is_rebuilt_from_params_and_fitted_attributes(rng):
    X = rng.normal(size=(200, 24))
    y = np.array(["qpo", "none"])[(X[:, 5:9].mean(axis=1) > 0).astype(int)]
    clf = CNNClassifier(**{**FAST, "max_epochs": 3}).fit(X, y)
    fresh = CNNClassifier(**clf.get_params())
    fresh.n_features_in_, fresh.classes_ = clf.n_features_in_, clf.classes_
    fresh.x_mean_, fresh.x_scale_ = clf.x_mean_, clf.x_scale_
    fresh.module_ = fresh._build_module(len(fresh.classes_))
    fresh.module_.load_state_dict(clf.module_.state_dict())
    np.testing.assert_array_equal(fresh.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize(
    ("param", "value"),
    [("kernel_size", 4), ("channels", 0), ("dropout", 1.0), ("lr", 0.0), ("validation_fraction", 1.0)],
)
def test_bad_parameters_are_named(param, value, rng):
    X, y = rng.normal(size=(20, 8)), np.arange(20) % 2
    with pytest.raises(ValueError, match=param):
        CNNClassifier(**{param: value}).fit(X, y)


def test_classifier_needs_two_classes(rng):
    with pytest.raises(ValueError, match="at least 2 classes"):
        CNNClassifier().fit(rng.normal(size=(20, 8)), np.zeros(20))


BLOCK_TORCH = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError(f"No module named {name!r}")

sys.meta_path.insert(0, NoTorch())
import xtml.learn.cnn
"""


def test_import_without_torch_says_how_to_install():
    out = subprocess.run([sys.executable, "-c", BLOCK_TORCH], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert (
        'ImportError: xtml.learn.cnn needs PyTorch, an optional dependency: pip install "xtml[sbi]"'
        in out.stderr
    )
