"""One reader for an observation file: an event list, or a binned light curve (FITS or ASCII columns)."""

from __future__ import annotations

from pathlib import Path

from xtml.timing.io import EventData, NotAnEventListError, read_events
from xtml.timing.lightcurve_io import BinnedLightCurve, read_lightcurve

__all__ = ["ASCII_SUFFIXES", "read_observation"]

#: File names read as ASCII light curves (time, counts[, error]) without trying FITS.
ASCII_SUFFIXES = (".txt", ".dat", ".csv", ".qdp", ".lc.txt")


def read_observation(
    path: str | Path,
    *,
    energy_range: tuple[float, float] | None = None,
    pi_range: tuple[float, float] | None = None,
) -> EventData | BinnedLightCurve:
    """An :class:`EventData` of an event file, or a :class:`BinnedLightCurve` of a light curve.

    ASCII files (``ASCII_SUFFIXES``) are light curves; a FITS file is read as events, and as a light
    curve when it holds none (:class:`NotAnEventListError`). If the light-curve reader refuses it too, its
    reason is the one raised (it names what is wrong with the light curve), with the event reader's.

    Parameters
    ----------
    path : str or Path
    energy_range : (float, float), optional
        Energy band, keV, of an event file (a light curve has its band already: refused).
    pi_range : (float, float), optional
        PI channels of an event file, ``low <= PI < high`` (a light curve: refused).

    Raises
    ------
    ValueError
        Naming the file and what is wrong with it.
    """
    p = Path(path)
    if p.name.lower().endswith(ASCII_SUFFIXES):
        return _light_curve(p, energy_range, pi_range)
    try:
        return read_events(p, energy_range=energy_range, pi_range=pi_range)
    except NotAnEventListError as err:
        try:
            lc = read_lightcurve(p)
        except ValueError as lc_err:  # the light-curve reader's reason is the real one
            why = str(err).removeprefix(f"{p}: ")
            raise ValueError(f"{lc_err} (read as a light curve: {why})") from None
        return _light_curve(p, energy_range, pi_range, lc)


def _light_curve(
    p: Path,
    energy_range: tuple[float, float] | None,
    pi_range: tuple[float, float] | None,
    lc: BinnedLightCurve | None = None,
) -> BinnedLightCurve:
    if energy_range is not None or pi_range is not None:
        which = "an energy band" if energy_range is not None else "a PI range"
        raise ValueError(
            f"{p}: a binned light curve has its band already; {which} selects events of an event file"
        )
    return read_lightcurve(p) if lc is None else lc
