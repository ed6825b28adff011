import numpy as np
import pytest
from nilearn import signal
from sklearn.preprocessing import StandardScaler

from giblet.fmri.clean import CleanConfig, clean_pieces, fill_nan_samples, standardize

TR_S = 2.0
# the nilearn reference calls below raise nilearn's own note to its developers
pytestmark = pytest.mark.filterwarnings("ignore:From release 0.14.0, confounds:DeprecationWarning")


@pytest.fixture
def pieces():
    """Runs of 100 and 100 TRs; a training block [0, 140), a gap, a test block [156, 200)."""
    return np.array([0] * 100 + [1] * 40 + [-1] * 16 + [2] * 44)


@pytest.mark.parametrize("filter_, cut", [("cosine", None), ("butterworth", 0.1)])
def test_clean_pieces_equals_nilearn_per_piece(rng, pieces, filter_, cut):
    values = rng.standard_normal((200, 4)) + np.linspace(0, 5, 200)[:, None]
    out = clean_pieces(values, pieces, np.ones(200, bool), tr_s=TR_S,
                       config=CleanConfig(high_pass_hz=0.01, low_pass_hz=cut, filter=filter_))
    for piece in (0, 1, 2):
        rows = pieces == piece
        expected = signal.clean(values[rows], detrend=True, standardize=None, filter=filter_, high_pass=0.01,
                                low_pass=cut, t_r=TR_S)
        assert np.allclose(out[rows], expected, atol=1e-5)
    assert np.isnan(out[pieces == -1]).all() and out.dtype == np.float32


def test_clean_pieces_test_block_never_reaches_training(rng, pieces):
    values = rng.standard_normal((200, 3))
    changed = values.copy()
    changed[156:] += 100.0 * rng.standard_normal((44, 3))
    usable = np.ones(200, bool)
    a = clean_pieces(values, pieces, usable, tr_s=TR_S, config=CleanConfig(high_pass_hz=0.01))
    b = clean_pieces(changed, pieces, usable, tr_s=TR_S, config=CleanConfig(high_pass_hz=0.01))
    assert np.array_equal(a[:140], b[:140]) and not np.allclose(a[156:], b[156:])


@pytest.mark.parametrize("filter_", ["cosine", "butterworth"])
def test_clean_pieces_censors_unusable_trs(rng, pieces, filter_):
    values = rng.standard_normal((200, 3))
    values[30] = np.nan  # a missing volume inside a piece
    values[195:] = values[194]  # a copied tail
    usable = np.ones(200, bool)
    usable[[30, 195, 196, 197, 198, 199]] = False
    out = clean_pieces(values, pieces, usable, tr_s=TR_S, config=CleanConfig(high_pass_hz=0.01, filter=filter_))
    assert np.isnan(out[~usable]).all() and np.isfinite(out[usable & (pieces >= 0)]).all()
    censored = np.r_[0:30, 31:100]  # nilearn censors (cosine) or interpolates (Butterworth) on the piece's time base
    expected = signal.clean(values[:100], sample_mask=censored, detrend=True, standardize=None, filter=filter_,
                            high_pass=0.01, t_r=TR_S)
    assert np.allclose(out[censored], expected, atol=1e-5)


def test_clean_pieces_removes_confound(rng, pieces):
    confound = rng.standard_normal((200, 1))
    values = 3.0 * confound + 0.1 * rng.standard_normal((200, 2))
    out = clean_pieces(values, pieces, np.ones(200, bool), tr_s=TR_S, confounds=confound)
    assert np.nanstd(out) < 0.12  # only the 0.1-SD noise is left


@pytest.mark.parametrize("kwargs, message", [
    ({"filter": "fir"}, r"fmri.filter must be one of \['cosine', 'butterworth'\], got 'fir'"),
    ({"low_pass_hz": 0.1}, "fmri.low_pass_hz needs fmri.filter: butterworth"),
    ({"filter": "butterworth", "high_pass_hz": 0.01}, r"cleaning TRs \[80, 83\) \(3 usable\) failed"),
])
def test_clean_pieces_bad_options_raise(rng, kwargs, message):
    pieces = np.array([0] * 80 + [1] * 3)  # a 3-TR piece: too short for a Butterworth filter
    with pytest.raises(ValueError, match=message):
        clean_pieces(rng.standard_normal((83, 2)), pieces, np.ones(83, bool), tr_s=TR_S, config=CleanConfig(**kwargs))


def test_standardize_fits_training_trs_only(rng):
    values = rng.standard_normal((100, 3)) + [5.0, -1.0, 0.0]
    values[70:] += 4.0  # the held-out block sits higher
    values[95:] = np.nan
    train = np.arange(100) < 60
    z, mean, scale = standardize(values, train)
    assert np.allclose(z[train].mean(axis=0), 0, atol=1e-6) and np.allclose(z[train].std(axis=0), 1, atol=1e-6)
    assert np.allclose(mean, values[train].mean(axis=0)) and np.allclose(scale, values[train].std(axis=0))
    held_out = z[70:95].mean(axis=0)
    assert np.all(held_out > 2.0)  # not re-centred: about 4 training SDs above
    assert np.allclose(held_out, (values[70:95].mean(axis=0) - mean) / scale, atol=1e-5)
    assert np.isnan(z[95:]).all()


def test_standardize_constant_training_voxel_raises(rng):
    values = rng.standard_normal((20, 3))
    values[:10, 1] = 2.0
    with pytest.raises(ValueError, match=r"voxels \[1\] are constant over the training TRs"):
        standardize(values, np.arange(20) < 10)


@pytest.mark.parametrize("filter_, cut", [("cosine", None), ("butterworth", 0.1)])
def test_clean_pieces_in_place_by_blocks_equals_one_shot(rng, pieces, small_blocks, filter_, cut):
    values = (rng.standard_normal((200, 8)) + np.linspace(0, 5, 200)[:, None]).astype(np.float32)
    usable = np.ones(200, bool)
    usable[[30, 120]] = False
    confound = rng.standard_normal((200, 1))
    expected = np.full(values.shape, np.nan)
    for piece in (0, 1, 2):  # nilearn on all 8 voxels of a piece at once
        rows = np.flatnonzero((pieces == piece) & usable)
        expected[rows] = signal.clean(values[pieces == piece], sample_mask=np.flatnonzero(usable[pieces == piece]),
                                      detrend=True, standardize=None, confounds=confound[pieces == piece],
                                      filter=filter_, high_pass=0.01, low_pass=cut, t_r=TR_S, extrapolate=False)
    cleaning = CleanConfig(high_pass_hz=0.01, low_pass_hz=cut, filter=filter_)
    out = clean_pieces(values, pieces, usable, tr_s=TR_S, config=cleaning, confounds=confound, out=values)
    assert out is values
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_standardize_in_place_by_blocks_equals_the_scaler(rng, small_blocks):
    values = (rng.standard_normal((60, 8)) * np.arange(1, 9) + 3.0).astype(np.float32)
    train = np.arange(60) < 40
    scaler = StandardScaler().fit(values[train].astype(np.float64))
    expected = scaler.transform(values.astype(np.float64))
    z, mean, scale = standardize(values, train, out=values)
    assert z is values
    np.testing.assert_allclose(z, expected, atol=1e-5)
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(scale, scaler.scale_, rtol=1e-12)


def test_standardize_constant_voxel_raises(rng, small_blocks):
    values = rng.standard_normal((20, 5))
    values[:, 4] = 2.0
    with pytest.raises(ValueError, match=r"voxels \[4\] are constant"):
        standardize(values, np.ones(20, bool))


def test_fill_nan_samples_interpolates_within_pieces(pieces):
    values = np.tile(np.arange(200.0)[:, None] ** 2, (1, 3))
    values[[10, 11], 0] = np.nan  # inside the first piece: between 9 (81) and 12 (144)
    values[100, 1] = np.nan  # first TR of piece 1: TR 99 (another piece) is no anchor, 101 is held
    values[50, 1] = 0.0  # an unusable TR's value is no anchor either
    values[49, 1] = np.nan
    usable = np.ones(200, bool)
    usable[50] = False
    n_filled, unfillable = fill_nan_samples(values, pieces, usable)
    assert values[10, 0] == pytest.approx(81 + (144 - 81) / 3) and values[11, 0] == pytest.approx(81 + 2 * (144 - 81) / 3)
    assert values[100, 1] == 101.0**2
    assert values[49, 1] == pytest.approx(48**2 + (51**2 - 48**2) / 3)
    assert values[50, 1] == 0.0 and n_filled.tolist() == [2, 2, 0] and not unfillable.any()


def test_fill_nan_samples_reports_unfillable_voxels(rng, pieces, small_blocks):
    values = rng.standard_normal((200, 5))
    values[100:140, 3] = np.nan  # every TR of piece 1
    values[148, 4] = np.nan  # in the gap: never used, left alone
    n_filled, unfillable = fill_nan_samples(values, pieces, pieces >= 0)
    assert np.flatnonzero(unfillable).tolist() == [3] and n_filled.tolist() == [0, 0, 0, 0, 0]
    assert np.isnan(values[148, 4])
