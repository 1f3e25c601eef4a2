"""Signal cleaning on synthetic signals with known answers: Hampel, the gap rule, resampling, Butterworth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfreqz

from efficientpose.analysis.filters import (
    FilterParams,
    clean,
    effective_cutoff,
    fill_short_gaps,
    hampel,
    is_variable_rate,
    lowpass,
    sampling,
)


def test_hampel_removes_spikes_and_keeps_a_smooth_movement() -> None:
    t = np.arange(300) / 30.0
    x = 100 * np.sin(2 * np.pi * 0.5 * t)
    spiky = x.copy()
    spikes = [40, 41, 120, 250]
    spiky[spikes] += [150, -150, 200, -170]  # a misplaced keypoint jumps far; the movement is 10 px per frame
    out, outliers = hampel(spiky, 3, 3.0)
    assert np.flatnonzero(outliers).tolist() == spikes
    assert np.isnan(out[spikes]).all()
    np.testing.assert_array_equal(out[~outliers], x[~outliers])
    assert not hampel(x, 3, 3.0)[1].any()  # the clean movement itself is never an outlier


def test_hampel_ignores_gaps_and_sub_threshold_jitter() -> None:
    x = np.full(50, 10.0)
    x[::7] += 0.2  # jitter of a still point
    x[20:23] = np.nan
    assert not hampel(x, 2, 3.0, min_deviation=1.0)[1].any()
    x[30] = 30.0
    out, outliers = hampel(x, 2, 3.0, min_deviation=1.0)
    assert np.flatnonzero(outliers).tolist() == [30]
    assert np.isnan(out[20:23]).all()


@pytest.mark.parametrize(("fps", "missing", "filled"), [
    (30.0, 3, True),  # 0.100 s <= 0.12 s
    (30.0, 4, False),  # 0.133 s
    (100.0, 12, True),  # 0.120 s: the limit itself
    (100.0, 13, False),
    (5.0, 1, True),  # 0.2 s, but one frame is always allowed
    (5.0, 2, False),
])
def test_only_short_gaps_are_filled(fps: float, missing: int, filled: bool) -> None:
    t = np.arange(60) / fps
    x = 2.0 * t + 1.0
    gappy = x.copy()
    gappy[20 : 20 + missing] = np.nan
    out, mask = fill_short_gaps(gappy, t, 0.12)
    if filled:
        np.testing.assert_allclose(out, x)
        assert mask.sum() == missing
    else:
        assert np.isnan(out[20 : 20 + missing]).all() and not mask.any()


def test_gaps_at_the_ends_are_never_filled() -> None:
    x = np.array([np.nan, 1.0, 2.0, 3.0, np.nan])
    out, mask = fill_short_gaps(x, np.arange(5) / 30.0, 1.0)
    assert np.isnan(out[[0, 4]]).all() and not mask.any()


def test_cutoff_is_capped_at_0_8_nyquist() -> None:
    assert effective_cutoff(6.0, 5.0) == pytest.approx(2.0)  # the 5 fps squat clip
    assert effective_cutoff(6.0, 30.0) == 6.0
    assert sampling(np.arange(65) / 5.0)["cutoff_hz_used"] == pytest.approx(2.0)


def test_butterworth_is_zero_lag_and_has_the_right_gain() -> None:
    fs = 100.0
    t = np.arange(1000) / fs
    slow = np.sin(2 * np.pi * 1.0 * t)
    fast = 0.5 * np.sin(2 * np.pi * 25.0 * t)
    out = lowpass(slow + fast, fs, 6.0, order=4)
    core = slice(100, -100)
    np.testing.assert_allclose(out[core], slow[core], atol=0.01)  # 1 Hz passes with no lag, 25 Hz is gone
    lag = np.argmax(np.correlate(out[core], slow[core], "full")) - (out[core].size - 1)
    assert lag == 0
    # forward-backward: the gain is the square of the order/2 filter's, so -6 dB (0.5) at the cut-off
    _, h = sosfreqz(butter(2, 6.0, fs=fs, output="sos"), worN=[6.0], fs=fs)
    assert abs(h[0]) ** 2 == pytest.approx(0.5, abs=1e-6)
    tone = np.sin(2 * np.pi * 6.0 * t)
    assert np.std(lowpass(tone, fs, 6.0)[core]) / np.std(tone[core]) == pytest.approx(0.5, abs=0.02)


def test_butterworth_leaves_gaps_as_gaps() -> None:
    x = np.sin(np.arange(100) / 10.0)
    x[40:60] = np.nan
    out = lowpass(x, 30.0, 6.0)
    assert np.isnan(out[40:60]).all() and np.isfinite(out[:40]).all() and np.isfinite(out[60:]).all()


def test_variable_frame_rate_is_resampled_and_read_back_at_the_frames() -> None:
    rng = np.random.default_rng(0)
    dt = rng.choice([1 / 60, 1 / 20], size=400)  # a phone switching between 60 and 20 fps
    t = np.concatenate([[0.0], np.cumsum(dt)])
    assert is_variable_rate(t) and not is_variable_rate(np.arange(100) / 30.0)
    truth = np.sin(2 * np.pi * 0.7 * t)
    noise = 0.05 * rng.standard_normal(t.size)
    result = clean(truth + noise, t, FilterParams(hampel_window_s=None))
    assert result.values.shape == t.shape
    core = (t > 1.0) & (t < t[-1] - 1.0)
    error = result.values[core] - truth[core]
    assert np.abs(error).max() < 0.15 and error.std() < 0.7 * noise.std()  # 6 of ~15 Hz of noise band kept
    info = sampling(t)
    assert info["resampled"] and info["sampling_rate_hz"] == pytest.approx(400 / t[-1])


def test_clean_in_order_outlier_then_fill_then_filter() -> None:
    fps = 30.0
    t = np.arange(150) / fps
    xy = np.stack([50 * np.sin(2 * np.pi * 0.5 * t), 20 * np.cos(2 * np.pi * 0.5 * t)], axis=1)
    noisy = xy.copy()
    noisy[70, 1] += 40  # an outlier in y only: the whole point goes
    noisy[100:102] = np.nan  # short gap: filled
    noisy[120:130] = np.nan  # long gap: stays
    result = clean(noisy, t)
    assert result.outliers[70] and result.outliers.sum() == 1
    assert result.filled[[70, 100, 101]].all() and not result.filled[120:130].any()
    assert np.isnan(result.values[120:130]).all()
    ok = np.isfinite(result.values[:, 0])
    assert np.abs(result.values[ok] - xy[ok]).max() < 1.0
    off = clean(noisy, t, FilterParams.off())
    np.testing.assert_array_equal(off.values, np.where(np.isfinite(noisy), noisy, np.nan))
