"""Embedding networks: summaries of a simulation that condition the posterior flow of :mod:`xtml.sbi.npe`.

An embedding maps a row of (standardised) features ``x`` of shape (batch, n_in) to a context of shape
(batch, n_out); it is trained jointly with the flow, so the summaries are whatever the posterior needs.

* :class:`MLPEmbedding`: a fully connected network, for any feature vector (spectral features, fitted
  parameters, a short spectrum).
* :class:`CNNEmbedding`: a 1-D convolutional network for spectra on a frequency grid: one channel of
  log-power, optionally more channels on the same grid (the cospectrum, a FAD-corrected spectrum).

PyTorch is optional: ``pip install "xtml[sbi]"``.
"""

from __future__ import annotations

from collections.abc import Sequence

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - torch is an optional dependency
    raise ImportError('xtml.sbi needs PyTorch, an optional dependency: pip install "xtml[sbi]"') from exc

__all__ = ["CNNEmbedding", "MLPEmbedding"]

MIN_LENGTH = 4  # pooling stops before a sequence gets shorter than this


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")


class MLPEmbedding(nn.Module):
    """Fully connected embedding ``n_in -> hidden[0] -> ... -> n_out`` with GELU activations.

    Parameters
    ----------
    n_in : int
        Number of input features.
    n_out : int
        Size of the context (summary) vector.
    hidden : sequence of int, default=(128, 128)
        Widths of the hidden layers (may be empty: a linear map).

    Examples
    --------
    >>> import torch
    >>> MLPEmbedding(20, 8)(torch.zeros(3, 20)).shape
    torch.Size([3, 8])
    """

    def __init__(self, n_in: int, n_out: int, hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__()
        _check_positive(n_in=n_in, n_out=n_out)
        hidden = tuple(hidden)
        _check_positive(**{f"hidden[{i}]": h for i, h in enumerate(hidden)})
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, n_out))
        self.net = nn.Sequential(*layers)
        self.n_in, self.n_out = n_in, n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` (batch, n_in) to the context (batch, n_out)."""
        return self.net(x)


class CNNEmbedding(nn.Module):
    """1-D convolutional embedding of spectra on a frequency grid of ``n_freq`` bins.

    The input row holds ``n_channels`` spectra on the same grid, concatenated (channel 0 = log-power,
    then e.g. the cospectrum and the FAD spectrum): shape (batch, n_channels * n_freq), or already
    (batch, n_channels, n_freq). With ``n_scalars`` > 0 the row ends with that many per-observation
    numbers (e.g. the log count rate), which join the flattened convolutional features before the head.
    ``n_blocks`` blocks of ``Conv1d -> GELU -> MaxPool1d`` follow (block ``i``
    has ``channels * 2**i`` channels, same-length convolutions, pooling by ``pool_size`` while at least
    ``MIN_LENGTH`` positions remain); the last map is flattened, which keeps *where* a feature is (a QPO
    frequency is a position), and ``Linear -> GELU -> Linear`` gives the ``n_out`` summaries.

    With the defaults, 150 bins of one channel become 75 x 8, then 37 x 16, then 18 x 32 positions x
    channels: about 0.2 M multiply-adds per spectrum.

    Parameters
    ----------
    n_freq : int
        Number of frequency bins per channel.
    n_channels : int, default=1
        Number of spectra per row (1 to 3 in practice).
    n_out : int, default=32
        Size of the context vector.
    n_scalars : int, default=0
        Numbers appended to each row after the spectra.
    channels, kernel_size, n_blocks, pool_size, hidden : int
        Architecture, as described above (``kernel_size`` odd).

    Examples
    --------
    >>> import torch
    >>> CNNEmbedding(100, n_channels=2, n_out=16)(torch.zeros(3, 200)).shape
    torch.Size([3, 16])
    """

    def __init__(
        self,
        n_freq: int,
        n_channels: int = 1,
        n_out: int = 32,
        *,
        n_scalars: int = 0,
        channels: int = 8,
        kernel_size: int = 5,
        n_blocks: int = 3,
        pool_size: int = 2,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        _check_positive(
            n_freq=n_freq,
            n_channels=n_channels,
            n_out=n_out,
            channels=channels,
            kernel_size=kernel_size,
            n_blocks=n_blocks,
            pool_size=pool_size,
            hidden=hidden,
        )
        if not isinstance(n_scalars, int) or isinstance(n_scalars, bool) or n_scalars < 0:
            raise ValueError(f"n_scalars must be an integer >= 0; got {n_scalars!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-length convolutions); got {kernel_size}")
        layers: list[nn.Module] = []
        length, c_in = n_freq, n_channels
        for i in range(n_blocks):
            c_out = channels * 2**i
            layers += [nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2), nn.GELU()]
            if pool_size > 1 and length // pool_size >= MIN_LENGTH:
                layers.append(nn.MaxPool1d(pool_size))
                length = length // pool_size
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(c_in * length + n_scalars, hidden), nn.GELU(), nn.Linear(hidden, n_out)
        )
        self.n_freq, self.n_channels, self.n_out, self.n_scalars = n_freq, n_channels, n_out, n_scalars
        self.n_in = n_freq * n_channels + n_scalars
        self.out_length = length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` (batch, n_channels * n_freq + n_scalars), or (batch, n_channels, n_freq) when there
        are no scalars, to (batch, n_out)."""
        if x.ndim == 2:
            if x.shape[1] != self.n_in:
                raise ValueError(
                    f"CNNEmbedding expects {self.n_channels} x {self.n_freq} + {self.n_scalars} = "
                    f"{self.n_in} "
                    f"features per row; got {x.shape[1]}"
                )
            n_spec = self.n_in - self.n_scalars
            scalars = x[:, n_spec:]
            x = x[:, :n_spec].reshape(x.shape[0], self.n_channels, self.n_freq)
            h = self.features(x).flatten(1)
            return self.head(torch.cat([h, scalars], dim=1) if self.n_scalars else h)
        if self.n_scalars:
            raise ValueError("with n_scalars > 0 the input must be 2-D rows (spectra then scalars)")
        return self.head(self.features(x).flatten(1))
