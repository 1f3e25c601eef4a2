"""Signal cleaning for keypoint trajectories, in order: Hampel outliers, short-gap filling, uniform resampling
(only when the frame rate varies) and a zero-lag Butterworth low-pass. Long gaps stay gaps (NaN).

Every step works on one (T,) series with NaN for missing samples and its (T,) frame times in seconds.
Defaults follow the biomechanics peers (docs/analysis.md, "Filtering").
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import butter, sosfiltfilt

#: Frame intervals may differ by this fraction of the median interval before the rate counts as variable.
VFR_TOLERANCE = 0.1


@dataclass(frozen=True)
class FilterParams:
    """The cleaning applied to every keypoint coordinate; ``None``/0 switches a step off."""

    hampel_window_s: float | None = 0.25  #: Hampel window width in seconds (at least 5 samples); None = off
    hampel_sigmas: float = 3.0  #: a sample is an outlier beyond this many robust SDs (1.4826 x MAD) of the median
    max_gap_s: float | None = 0.12  #: fill gaps up to this long (never less than one frame); None = no filling
    cutoff_hz: float | None = 6.0  #: Butterworth cut-off; None = no low-pass
    order: int = 4  #: overall order of the zero-lag filter (order/2 run forward and backward)
    max_cutoff_fraction: float = 0.8  #: the cut-off is capped at this fraction of the Nyquist frequency

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def off(cls) -> FilterParams:
        """No cleaning at all: the model's keypoints as they are."""
        return cls(hampel_window_s=None, max_gap_s=None, cutoff_hz=None)


#: The defaults, as used by ``analyze``.
DEFAULT_FILTERS = FilterParams()


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs of a 1-D boolean mask."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def frame_interval(times: np.ndarray) -> float:
    """The median interval between frames (seconds); 1.0 when there are fewer than two frames."""
    dt = np.diff(np.asarray(times, dtype=np.float64))
    return float(np.median(dt)) if dt.size and np.median(dt) > 0 else 1.0


def is_variable_rate(times: np.ndarray, tolerance: float = VFR_TOLERANCE) -> bool:
    """True when some frame interval differs from the median one by more than ``tolerance`` of it."""
    dt = np.diff(np.asarray(times, dtype=np.float64))
    if dt.size < 2:
        return False
    med = float(np.median(dt))
    return bool(np.any(np.abs(dt - med) > tolerance * med))


def hampel(x: np.ndarray, half_window: int, n_sigmas: float = 3.0,
           min_deviation: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(copy of ``x`` with outliers set to NaN, outlier mask): samples farther than ``n_sigmas`` robust SDs
    (1.4826 x median absolute deviation) from the median of the ``2 * half_window + 1`` samples around them,
    and at least ``min_deviation`` from it (so a still keypoint's sub-pixel jitter is never an outlier).
    NaN samples are ignored in the windows and never flagged; the first and last ``half_window`` samples, which
    have no centred window, are not tested."""
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    outliers = np.zeros(x.shape, dtype=bool)
    if half_window < 1 or x.size < 3:
        return out, outliers
    padded = np.pad(x, half_window, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_window + 1)
    enough = np.isfinite(windows).sum(axis=1) >= 3
    enough[:half_window] = enough[-half_window:] = False  # no centred window at the ends: not tested
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows (inside gaps) are expected
        med = np.nanmedian(windows, axis=1)
        mad = np.nanmedian(np.abs(windows - med[:, None]), axis=1)
    deviation = np.abs(x - med)
    outliers = enough & np.isfinite(x) & (deviation > n_sigmas * 1.4826 * mad) & (deviation > min_deviation)
    out[outliers] = np.nan
    return out, outliers


def hampel_in_time(x: np.ndarray, times: np.ndarray, half_window_s: float, n_sigmas: float = 3.0,
                   min_deviation: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hampel` for a variable frame rate: each window holds the samples within ``half_window_s`` seconds
    (at least two on each side); samples without two neighbours on both sides are not tested."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    out, outliers = x.copy(), np.zeros(x.shape, dtype=bool)
    lo = np.minimum(np.searchsorted(t, t - half_window_s, side="left"), np.arange(x.size) - 2)
    hi = np.maximum(np.searchsorted(t, t + half_window_s, side="right"), np.arange(x.size) + 3)
    for i in range(2, x.size - 2):
        window = x[max(0, lo[i]):hi[i]]
        window = window[np.isfinite(window)]
        if window.size < 3 or not np.isfinite(x[i]):
            continue
        med = np.median(window)
        dev = abs(x[i] - med)
        outliers[i] = dev > n_sigmas * 1.4826 * np.median(np.abs(window - med)) and dev > min_deviation
    out[outliers] = np.nan
    return out, outliers


def fill_short_gaps(x: np.ndarray, times: np.ndarray, max_gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(copy of ``x`` with short interior NaN runs linearly interpolated, mask of the filled samples).

    A run of missing samples is filled when it lasts at most ``max(max_gap_s, one frame)``; its length is
    the time between the measured samples around it less one frame interval (n frames at a constant rate).
    Runs at the clip's start or end are never filled.
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    out, filled = x.copy(), np.zeros(x.shape, dtype=bool)
    dt = frame_interval(t)
    limit = max(max_gap_s, dt) + 1e-6 * dt
    for start, stop in runs(~np.isfinite(x)):
        if start == 0 or stop == x.size:
            continue
        if t[stop] - t[start - 1] - dt <= limit:
            out[start:stop] = np.interp(t[start:stop], t[[start - 1, stop]], x[[start - 1, stop]])
            filled[start:stop] = True
    return out, filled


def resample(x: np.ndarray, times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``x`` (NaN = missing) linearly interpolated onto ``grid``; grid points inside a gap or outside the
    measured span stay NaN."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    out = np.full(np.shape(grid), np.nan)
    for start, stop in runs(np.isfinite(x)):
        inside = (grid >= t[start]) & (grid <= t[stop - 1])
        out[inside] = np.interp(grid[inside], t[start:stop], x[start:stop])
    return out


def effective_cutoff(cutoff_hz: float, fs: float, max_fraction: float = 0.8) -> float:
    """The cut-off actually used: ``cutoff_hz`` capped at ``max_fraction`` of the Nyquist frequency fs/2."""
    return float(min(cutoff_hz, max_fraction * fs / 2))


def lowpass(x: np.ndarray, fs: float, cutoff_hz: float, order: int = 4) -> np.ndarray:
    """Zero-lag Butterworth low-pass of a uniformly sampled series: an ``order/2`` filter run forward and
    backward (``scipy.signal.sosfiltfilt``) over each run of measured samples; NaN stay NaN. Runs too short
    to filter (fewer than 4 samples) are left as they are."""
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    sos = butter(max(1, order // 2), cutoff_hz, btype="low", fs=fs, output="sos")
    for start, stop in runs(np.isfinite(x)):
        n = stop - start
        if n < 4:
            continue
        out[start:stop] = sosfiltfilt(sos, x[start:stop], padlen=min(3 * (2 * len(sos) + 1), n - 1))
    return out


@dataclass
class Cleaned:
    """A series after cleaning, at its original times, with what happened to each sample."""

    values: np.ndarray  #: (T,) or (T, D) cleaned values, NaN where a gap remains
    outliers: np.ndarray  #: (T,) rejected by the Hampel filter (in any column)
    filled: np.ndarray  #: (T,) filled by interpolation (was missing or an outlier)


def clean(x: np.ndarray, times: np.ndarray, params: FilterParams | None = None,
          min_deviation: float = 0.0) -> Cleaned:
    """Hampel, short-gap filling, resampling onto a uniform grid when the rate varies, zero-lag low-pass.

    ``x`` is (T,) or (T, D) (e.g. a keypoint's x and y): a sample rejected in one column is rejected in all.
    ``min_deviation`` is the Hampel filter's smallest outlier (in the units of ``x``).
    The result is read back at the original ``times``.
    """
    params = params or DEFAULT_FILTERS
    t = np.asarray(times, dtype=np.float64)
    values = np.array(x, dtype=np.float64)
    flat = values.ndim == 1
    values = values.reshape(len(t), -1)
    dt = frame_interval(t)
    values[~np.isfinite(values).all(axis=1)] = np.nan
    outliers = np.zeros(len(t), dtype=bool)
    if params.hampel_window_s:
        half = max(2, int(round(params.hampel_window_s / dt / 2)))
        vfr = is_variable_rate(t)
        for column in values.T:
            outliers |= (hampel_in_time(column, t, params.hampel_window_s / 2, params.hampel_sigmas, min_deviation)
                         if vfr else hampel(column, half, params.hampel_sigmas, min_deviation))[1]
        values[outliers] = np.nan
    filled = np.zeros(len(t), dtype=bool)
    if params.max_gap_s is not None:
        for d in range(values.shape[1]):
            values[:, d], filled = fill_short_gaps(values[:, d], t, params.max_gap_s)
    if params.cutoff_hz:
        vfr = is_variable_rate(t)
        fs = (t.size - 1) / (t[-1] - t[0]) if vfr else 1.0 / dt
        cutoff = effective_cutoff(params.cutoff_hz, fs, params.max_cutoff_fraction)
        grid = np.linspace(t[0], t[-1], t.size) if vfr else t  # the mean rate, ends included
        for d in range(values.shape[1]):
            smooth = lowpass(resample(values[:, d], t, grid) if vfr else values[:, d], fs, cutoff, params.order)
            values[:, d] = np.where(np.isfinite(values[:, d]), resample(smooth, grid, t) if vfr else smooth, np.nan)
    return Cleaned(values[:, 0] if flat else values, outliers, filled)


def sampling(times: np.ndarray, params: FilterParams | None = None) -> dict:
    """What the cleaning of a clip with these frame times uses: rate, variability, cut-off and gap limit."""
    params = params or DEFAULT_FILTERS
    t = np.asarray(times, dtype=np.float64)
    vfr = is_variable_rate(t)
    fs = (t.size - 1) / (t[-1] - t[0]) if vfr else 1.0 / frame_interval(t)
    return {
        "sampling_rate_hz": float(fs),
        "variable_frame_rate": vfr,
        "resampled": bool(vfr and params.cutoff_hz),
        "cutoff_hz_used": effective_cutoff(params.cutoff_hz, fs, params.max_cutoff_fraction)
        if params.cutoff_hz else None,
        "max_gap_frames": int(np.floor(max(params.max_gap_s, frame_interval(t)) / frame_interval(t) + 1e-6))
        if params.max_gap_s is not None else 0,
        "hampel_half_window_frames": max(2, int(round(params.hampel_window_s / frame_interval(t) / 2)))
        if params.hampel_window_s else None,
    }
