"""A 1-D convolutional network as scikit-learn estimators: :class:`CNNClassifier`, :class:`CNNRegressor`.

Rows of ``X`` are sequences on a regular grid, typically log-power spectra on a frequency grid. Each
feature is standardised with the training mean and standard deviation; the network
(:class:`xtml.learn._torch_train.ConvNet1d`) sees a row as one channel plus a coordinate channel. Training
is AdamW on minibatches with early stopping on a seeded validation split (stratified for the classifier),
keeping the best weights. The regressor has a Gaussian head (mean and log-variance per target, trained with
the Gaussian negative log-likelihood) and returns standard deviations with ``return_std=True``, rescaled
once on the validation split so that the mean squared standardised error there is 1 (sigma scaling).

Computation is float32; prediction runs in fixed chunks of rows so that a row's output does not depend on
the rows predicted with it. With the defaults, one epoch over 90,000 spectra of 512 bins (and 10,000
for validation) costs about 9 CPU-seconds on the project's 2-core machine (``bench/bench_cnn.py``).

Randomness: ``random_state`` seeds torch inside :func:`torch.random.fork_rng` (weights, dropout) and a local
:class:`torch.Generator` (shuffling); the caller's global torch RNG is left as it was. Threads:
``n_threads`` (default: ``OMP_NUM_THREADS`` if set, else the CPUs available to the process) is set for
the duration of ``fit`` and ``predict`` and then restored. On a machine whose cores are busy with other
work, torch's OpenMP threads spin-wait for each other at every operation: use ``n_threads=1`` there, or
start Python with ``OMP_WAIT_POLICY=PASSIVE`` (two threads were 25x slower than one on the shared 2-core
machine without it).

The fitted network is ``module_``; ``estimator._build_module(n_outputs)`` rebuilds it (untrained) from
``get_params()`` and ``n_features_in_``, with ``n_outputs = len(classes_)`` (classifier) or
``2 * n_outputs_`` (regressor), so that its state dict and the other fitted attributes (plain arrays and
numbers) are all that needs saving.

PyTorch is optional: ``pip install "xtml[sbi]"``.
"""

from __future__ import annotations

import numbers
from typing import Self

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import Tags, check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

try:
    import torch
    from torch.nn import functional
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        'xtml.learn.cnn needs PyTorch, an optional dependency: pip install "xtml[sbi]"'
    ) from exc

from xtml.learn._torch_train import (
    LOGVAR_RANGE,
    ConvNet1d,
    gaussian_nll,
    predict_batches,
    seeded,
    torch_threads,
    train,
)
from xtml.simulate.lightcurves import default_threads

__all__ = ["CNNClassifier", "CNNRegressor"]

MIN_CALIBRATION_ROWS = 20  # validation rows needed to rescale the regressor's std (else it is left as is)


def _check_int(name: str, value: object, low: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")


def _check_float(name: str, value: object, low: float, high: float, *, closed_high: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and low <= float(value) and (float(value) <= high if closed_high else float(value) < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{name} must be a number in [{low}, {high}{bracket}; got {value!r}")


def _train_val_split(
    n: int, y: np.ndarray | None, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) of ``n`` rows, seeded; stratified on ``y`` when given and possible.

    The validation set has ``round(validation_fraction * n)`` rows; it is empty when that is 0 or would
    leave fewer than 2 training rows. Stratification falls back to a plain shuffle when a class has fewer
    than 2 members or the validation set is smaller than the number of classes.
    """
    idx = np.arange(n)
    n_val = round(validation_fraction * n)
    if n_val < 1 or n - n_val < 2:
        return idx, idx[:0]
    stratify = None
    if y is not None:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and counts.size <= min(n_val, n - n_val):
            stratify = y
    train_idx, val_idx = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train_idx), np.sort(val_idx)


class _BaseCNN(BaseEstimator):
    """Shared parameters, checks, standardisation and training of the CNN estimators."""

    def __init__(
        self,
        *,
        channels: int = 8,
        kernel_size: int = 7,
        n_blocks: int = 3,
        stride: int = 2,
        pool_size: int = 4,
        hidden: int = 64,
        dropout: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 100,
        patience: int = 5,
        tol: float = 1e-4,
        validation_fraction: float = 0.1,
        random_state: int | np.random.RandomState | None = None,
        n_threads: int | None = None,
    ) -> None:
        self.channels = channels
        self.kernel_size = kernel_size
        self.n_blocks = n_blocks
        self.stride = stride
        self.pool_size = pool_size
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.tol = tol
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.n_threads = n_threads

    def _check_params(self) -> None:
        for name, low in (
            ("channels", 1),
            ("kernel_size", 1),
            ("n_blocks", 1),
            ("stride", 1),
            ("pool_size", 1),
            ("hidden", 1),
            ("batch_size", 2),
            ("max_epochs", 1),
            ("patience", 1),
        ):
            _check_int(name, getattr(self, name), low)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-length convolutions); got {self.kernel_size!r}")
        _check_float("dropout", self.dropout, 0.0, 1.0)
        _check_float("lr", self.lr, 0.0, np.inf)
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0; got {self.lr!r}")
        _check_float("weight_decay", self.weight_decay, 0.0, np.inf)
        _check_float("tol", self.tol, 0.0, np.inf)
        _check_float("validation_fraction", self.validation_fraction, 0.0, 1.0)
        if self.n_threads is not None:
            _check_int("n_threads", self.n_threads, 1)

    def _threads(self) -> int:
        return default_threads() if self.n_threads is None else int(self.n_threads)

    def _build_module(self, n_outputs: int) -> ConvNet1d:
        """The (untrained) network for ``n_features_in_`` inputs and ``n_outputs`` outputs."""
        return ConvNet1d(
            self.n_features_in_,
            n_outputs,
            channels=self.channels,
            kernel_size=self.kernel_size,
            n_blocks=self.n_blocks,
            stride=self.stride,
            pool_size=self.pool_size,
            hidden=self.hidden,
            dropout=self.dropout,
        )

    def _standardise_fit(self, x: np.ndarray) -> np.ndarray:
        self.x_mean_ = x.mean(axis=0, dtype=np.float64)
        std = x.std(axis=0, dtype=np.float64)
        self.x_scale_ = np.where(std > 0, std, 1.0)
        return self._standardise(x)

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        """float32 copy of ``x`` with the training mean removed and divided by the training std."""
        out = np.array(x, dtype=np.float32, order="C", copy=True)
        out -= self.x_mean_.astype(np.float32)
        out /= self.x_scale_.astype(np.float32)
        return out

    def _fit_network(
        self, x: np.ndarray, target: np.ndarray, n_outputs: int, stratify: np.ndarray | None
    ) -> np.ndarray:
        """Build ``module_`` and train it on standardised ``x`` (float32) and ``target``.

        Returns the indices of the validation rows (empty when training without validation).
        """
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        train_idx, val_idx = _train_val_split(x.shape[0], stratify, self.validation_fraction, seed)
        has_val = val_idx.size > 0
        with torch_threads(self._threads()), seeded(seed) as generator:
            self.module_ = self._build_module(n_outputs)
            result = train(
                self.module_,
                self._loss,
                x[train_idx],
                target[train_idx],
                x[val_idx] if has_val else None,
                target[val_idx] if has_val else None,
                lr=self.lr,
                weight_decay=self.weight_decay,
                batch_size=self.batch_size,
                max_epochs=self.max_epochs,
                patience=self.patience,
                tol=self.tol,
                generator=generator,
            )
        self.n_iter_ = result.n_epochs
        self.best_loss_ = result.best_loss
        self.best_epoch_ = result.best_epoch
        self.history_ = result.history
        return val_idx

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _raw_predict(self, X: ArrayLike) -> torch.Tensor:
        check_is_fitted(self, "module_")
        x = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        with torch_threads(self._threads()):
            return predict_batches(self.module_, self._standardise(x))


class CNNClassifier(ClassifierMixin, _BaseCNN):
    """A 1-D convolutional network classifier (cross-entropy, softmax probabilities).

    Parameters
    ----------
    channels : int, default=8
        Channels of the first convolutional block; block ``i`` has ``channels * 2**i``.
    kernel_size : int, default=7
        Odd convolution kernel length, in features (bins).
    n_blocks : int, default=3
        Number of ``Conv1d -> MaxPool1d -> BatchNorm1d -> ReLU`` blocks.
    stride : int, default=2
        Stride of the first convolution (reduced automatically on short sequences).
    pool_size : int, default=4
        Max-pooling factor of each block (reduced automatically on short sequences).
    hidden : int, default=64
        Width of the hidden layer of the head.
    dropout : float, default=0.1
        Dropout probability in the head.
    lr : float, default=3e-3
        AdamW learning rate.
    weight_decay : float, default=1e-4
        AdamW decoupled weight decay.
    batch_size : int, default=256
        Training minibatch size.
    max_epochs : int, default=100
        Maximum number of passes over the training rows.
    patience : int, default=5
        Stop after this many epochs without improving the validation loss by more than ``tol``.
    tol : float, default=1e-4
        Minimal improvement of the monitored loss.
    validation_fraction : float, default=0.1
        Fraction of the training rows held out (stratified) for early stopping; 0 monitors the training loss.
    random_state : int, RandomState or None, default=None
        Seeds weights, dropout, shuffling and the validation split.
    n_threads : int or None, default=None
        Torch threads during ``fit`` and ``predict``; None uses ``OMP_NUM_THREADS`` if set, else the CPUs
        available. Use 1 when other processes keep the cores busy (see the module docstring).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Sequence length seen in ``fit``.
    x_mean_, x_scale_ : ndarray of shape (n_features_in_,)
        Per-feature standardisation of the inputs.
    module_ : torch.nn.Module
        The trained network (eval mode), outputs ``n_classes`` logits.
    n_iter_ : int
        Epochs run.
    best_loss_ : float
        Best monitored loss (mean cross-entropy, nats).
    best_epoch_ : int
        0-based epoch of ``best_loss_``, whose weights ``module_`` holds.
    history_ : dict of str to list of float
        ``"train_loss"`` and (if validating) ``"val_loss"`` per epoch.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 32))
    >>> y = (X[:, 10:14].mean(axis=1) > 0).astype(int)
    >>> clf = CNNClassifier(max_epochs=5, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:3]).shape
    (3, 2)
    """

    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Train on rows ``X`` with labels ``y``; return ``self``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows, each a sequence on a regular grid (e.g. log-power per frequency bin).
        y : array-like of shape (n_samples,)
            Class labels (at least 2 classes).

        Returns
        -------
        CNNClassifier
            The fitted estimator.
        """
        self._check_params()
        x, y = validate_data(self, X, y, dtype=[np.float64, np.float32], ensure_min_samples=2)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(
                f"CNNClassifier needs at least 2 classes in y; got 1 class ({self.classes_[0]!r})"
            )
        self._fit_network(self._standardise_fit(x), y_idx.astype(np.int64), self.classes_.size, y_idx)
        return self

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(out, target)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), in the order of ``classes_``."""
        logits = self._raw_predict(X).double()
        return torch.softmax(logits, dim=1).numpy()

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Log class probabilities, shape (n_samples, n_classes)."""
        logits = self._raw_predict(X).double()
        return torch.log_softmax(logits, dim=1).numpy()

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most probable class of each row, shape (n_samples,)."""
        logits = self._raw_predict(X).numpy()
        return self.classes_[np.argmax(logits, axis=1)]


class CNNRegressor(RegressorMixin, _BaseCNN):
    r"""A 1-D convolutional network regressor with Gaussian uncertainties (multi-output).

    Targets are standardised with their training mean and std. The network outputs, per target, a mean
    :math:`\mu` and a log-variance :math:`\log\sigma^2` and is trained with the Gaussian negative
    log-likelihood :math:`\tfrac12[\log 2\pi + \log\sigma^2 + (y-\mu)^2/\sigma^2]`; ``predict(X,
    return_std=True)`` returns :math:`(\mu, s\,\sigma)` in the units of ``y``, where the per-target factor
    :math:`s` (``std_scale_``) makes :math:`\langle (y-\mu)^2 / (s\sigma)^2 \rangle = 1` on the validation
    split (sigma scaling). Without it the std tends to be too large (by 10-40 % in the tests): dropout and
    batch statistics add scatter during training, and the variance lags behind the mean. The uncertainty is
    aleatoric (the scatter of ``y`` given ``X`` in the training distribution), not the network's own
    uncertainty, and Gaussian: where the true posterior is multimodal (a weak bump that noise can mimic
    elsewhere) the fraction of errors within one std departs from 68 %.

    Parameters
    ----------
    channels, kernel_size, n_blocks, stride, pool_size, hidden, dropout, lr, weight_decay, batch_size, \
max_epochs, patience, tol, validation_fraction, random_state, n_threads
        As in :class:`CNNClassifier` (the split is not stratified; the losses are Gaussian NLLs). The
        validation split also calibrates the std (when it has at least 20 rows).

    Attributes
    ----------
    n_features_in_ : int
        Sequence length seen in ``fit``.
    n_outputs_ : int
        Number of targets.
    x_mean_, x_scale_ : ndarray of shape (n_features_in_,)
        Per-feature standardisation of the inputs.
    y_mean_, y_scale_ : ndarray of shape (n_outputs_,)
        Standardisation of the targets.
    std_scale_ : ndarray of shape (n_outputs_,)
        Sigma-scaling factor of the predicted std (ones without a validation split of >= 20 rows).
    module_ : torch.nn.Module
        The trained network (eval mode), outputs ``2 * n_outputs_`` numbers (means, then log-variances).
    n_iter_, best_loss_, best_epoch_, history_
        As in :class:`CNNClassifier` (losses are mean Gaussian NLLs of the standardised targets, nats).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 32))
    >>> y = X[:, 10:14].mean(axis=1)
    >>> reg = CNNRegressor(max_epochs=5, random_state=0).fit(X, y)
    >>> mean, std = reg.predict(X[:3], return_std=True)
    >>> mean.shape, bool((std > 0).all())
    ((3,), True)
    """

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Train on rows ``X`` and targets ``y``; return ``self``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows, each a sequence on a regular grid (e.g. log-power per frequency bin).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        CNNRegressor
            The fitted estimator.
        """
        self._check_params()
        x, y = validate_data(
            self,
            X,
            y,
            dtype=[np.float64, np.float32],
            ensure_min_samples=2,
            multi_output=True,
            y_numeric=True,
        )
        y2 = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
        self._y_1d = y.ndim == 1
        self.n_outputs_ = y2.shape[1]
        self.y_mean_ = y2.mean(axis=0)
        std = y2.std(axis=0)
        self.y_scale_ = np.where(std > 0, std, 1.0)
        target = ((y2 - self.y_mean_) / self.y_scale_).astype(np.float32)
        xs = self._standardise_fit(x)
        val_idx = self._fit_network(xs, target, 2 * self.n_outputs_, None)
        self.std_scale_ = np.ones(self.n_outputs_)
        if val_idx.size >= MIN_CALIBRATION_ROWS:
            with torch_threads(self._threads()):
                out = predict_batches(self.module_, xs[val_idx]).double().numpy()
            k = self.n_outputs_
            z2 = (target[val_idx] - out[:, :k]) ** 2 * np.exp(-np.clip(out[:, k:], *LOGVAR_RANGE))
            self.std_scale_ = np.sqrt(z2.mean(axis=0))
        return self

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gaussian_nll(out, target)

    def predict(self, X: ArrayLike, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted mean, shaped like ``y`` in ``fit``; and the predicted std if ``return_std``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Rows to predict.
        return_std : bool, default=False
            Also return the predicted standard deviation (same shape and units as the mean).

        Returns
        -------
        mean : ndarray
            Predicted mean of ``y``.
        std : ndarray
            Predicted standard deviation of ``y`` given ``X``; only when ``return_std`` is True.
        """
        out = self._raw_predict(X).double().numpy()
        k = self.n_outputs_
        mean = out[:, :k] * self.y_scale_ + self.y_mean_
        if self._y_1d:
            mean = mean[:, 0]
        if not return_std:
            return mean
        std = np.exp(0.5 * np.clip(out[:, k:], *LOGVAR_RANGE)) * self.std_scale_ * self.y_scale_
        return mean, (std[:, 0] if self._y_1d else std)
