"""One Euro filter: jitter reduction, bounded lag, real time stamps, missing keypoints."""

from __future__ import annotations

import numpy as np
import pytest

from efficientpose.inference.smoothing import OneEuroFilter, smooth_sequence


def _jitter(track: np.ndarray) -> float:
    """Mean absolute frame-to-frame change."""
    return float(np.abs(np.diff(track, axis=0)).mean())


def test_still_pose_jitter_drops():
    rng = np.random.default_rng(0)
    times = np.arange(300) / 30.0
    truth = rng.uniform(0, 500, size=(16, 2))
    raw = truth + rng.normal(0, 2.0, size=(300, 16, 2))
    smooth = smooth_sequence(raw, times)
    settled = smooth[30:]
    assert _jitter(settled) < 0.5 * _jitter(raw[30:])
    assert np.abs(settled - truth).mean() < 0.5 * np.abs(raw[30:] - truth).mean()


def _steady_lag(speed: float, min_cutoff: float, beta: float) -> float:
    """Steady-state lag of the filter on a ramp: speed * tau with tau = 1 / (2 pi cutoff)."""
    return speed / (2 * np.pi * (min_cutoff + beta * speed))


@pytest.mark.parametrize("beta", [0.0, 0.01, 0.05])
def test_ramp_is_followed_with_the_predicted_lag(beta):
    times = np.arange(120) / 30.0
    speed = 200.0
    track = np.stack([speed * times, np.full_like(times, 50.0)], axis=-1)[:, None, :]
    smooth = smooth_sequence(track, times, min_cutoff=1.0, beta=beta)
    lag = track[:, 0, 0] - smooth[:, 0, 0]
    expected = _steady_lag(speed, 1.0, beta)
    # Never ahead, and never further behind than the slowest (speed-blind, beta = 0) filter.
    assert np.all(lag >= -1e-9) and np.all(lag <= _steady_lag(speed, 1.0, 0.0) + 1e-6)
    np.testing.assert_allclose(lag[-30:], expected, rtol=1e-4)
    np.testing.assert_allclose(smooth[:, 0, 1], 50.0)


def test_speed_term_shortens_the_response_to_a_step():
    times = np.arange(90) / 30.0
    track = np.repeat(np.where(times < 1.0, 0.0, 100.0)[:, None, None], 2, axis=2)
    after = int(1.2 * 30)  # 0.2 s after the step
    slow = 100.0 - smooth_sequence(track, times, beta=0.0)[after, 0, 0]
    fast = 100.0 - smooth_sequence(track, times, beta=0.01)[after, 0, 0]
    assert 0 < fast < 0.1 * slow and fast < 2.0
    full = smooth_sequence(track, times, beta=0.01)[:, 0, 0]
    assert np.all(np.diff(full) >= -1e-9) and full.max() <= 100.0 + 1e-9  # monotone, no overshoot


def test_irregular_time_stamps_keep_the_same_lag():
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.008, 0.07, size=200))  # 14..125 fps, jittery
    speed = 200.0
    track = np.stack([speed * times, np.zeros_like(times)], axis=-1)[:, None, :]
    lag = track[:, 0, 0] - smooth_sequence(track, times, beta=0.01)[:, 0, 0]
    # A time-aware filter lags by the same distance however the frames are spaced.
    np.testing.assert_allclose(lag[-50:], _steady_lag(speed, 1.0, 0.01), rtol=1e-4)


def test_missing_keypoints_hold_then_restart():
    filt = OneEuroFilter(min_score=0.3, reset_after=0.5)
    first = filt(np.array([[10.0, 10.0], [np.nan, np.nan]]), 0.0)
    assert np.allclose(first[0], 10.0) and np.isnan(first[1]).all()
    out = filt(np.array([[20.0, 10.0], [5.0, 5.0]]), 0.1, scores=np.array([0.1, 0.9]))
    np.testing.assert_allclose(out[0], (10.0, 10.0))  # low score: hold
    np.testing.assert_allclose(out[1], (5.0, 5.0))  # first sighting: raw
    out = filt(np.array([[20.0, 10.0], [6.0, 5.0]]), 0.2, scores=np.array([0.9, 0.9]))
    assert 10.0 < out[0, 0] < 20.0 and 5.0 < out[1, 0] < 6.0  # filtered, dt measured per keypoint
    out = filt(np.array([[90.0, 90.0], [6.0, 5.0]]), 1.0)  # 0.8 s after keypoint 0's last update
    np.testing.assert_allclose(out[0], (90.0, 90.0))


def test_time_stamps_and_reset():
    filt = OneEuroFilter()
    filt(np.zeros((2, 2)), 1.0)
    again = filt(np.ones((2, 2)), 1.0)  # duplicate time stamp: no update
    np.testing.assert_allclose(again, 0.0)
    with pytest.raises(ValueError):
        filt(np.ones((2, 2)), 0.5)
    with pytest.raises(ValueError):
        filt(np.ones((3, 2)), 2.0)
    filt.reset()
    np.testing.assert_allclose(filt(np.full((3, 2), 7.0), 0.0), 7.0)
