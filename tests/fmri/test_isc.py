import numpy as np
import pytest
from scipy.stats import zscore

from giblet.fmri.isc import isc_vs_group_mean, loso_isc, published_isc
from tests.conftest import SHARED_DATA

SHERLOCK = SHARED_DATA / "sherlock"


def test_loso_isc_matches_explicit_correlation(rng):
    shared = rng.standard_normal((100, 3))
    data = shared + rng.standard_normal((5, 100, 3))
    out = loso_isc(data)
    for s in range(5):
        others = np.delete(data, s, axis=0).mean(axis=0)
        expected = [np.corrcoef(data[s, :, v], others[:, v])[0, 1] for v in range(3)]
        assert np.allclose(out[s], expected)
    assert out.mean() > 0.5  # 1:1 signal to noise, 4 others: r ~ 0.6


def test_loso_isc_leaves_out_nan_trs(rng):
    data = rng.standard_normal((4, 60))
    with_nan = data.copy()
    with_nan[2, 10:15] = np.nan
    assert np.allclose(loso_isc(with_nan), loso_isc(np.delete(data, np.s_[10:15], axis=1)))


def test_isc_vs_group_mean_equals_loso(rng):
    data = rng.standard_normal((6, 80, 2)) + rng.standard_normal((80, 2))
    mean = data.mean(axis=0)
    assert np.allclose([isc_vs_group_mean(d, mean, 6) for d in data], loso_isc(data))


def test_isc_vs_group_mean_bad_shape_raises():
    with pytest.raises(ValueError, match=r"own \(10,\) and group_mean \(9,\) must have the same shape"):
        isc_vs_group_mean(np.zeros(10), np.zeros(9), 17)


@pytest.mark.real
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data (Sherlock PMC voxels and roicorr)")
def test_isc_sherlock_pmc_reproduces_published():
    """Published roicorr: each subject's z-scored PMC mean vs the mean of the other 16 of 17.

    ``meantc`` is the mean of all 17 z-scored ROI means, so the other-16 mean is
    (17 meantc - own) / 16, with own z-scored as MATLAB does (ddof=1). keptvox flags all 481
    voxels of these 12 subjects, so the mean over kept voxels is the mean over the mask. The
    published values include s5's copied tail (TRs 1926-1975); leaving it out moves s5 from
    0.469 to 0.483.
    """
    import nibabel as nib
    import scipy.io

    from giblet.fmri.load import read_matrix
    from giblet.fmri.masks import roi_means

    published = scipy.io.loadmat(SHERLOCK / "roi_group_mean" / "pmc_nn_sherlock_movie_roicorr.mat")
    mask = np.asanyarray(nib.load(SHERLOCK / "masks" / "pmc_nn.nii.gz").dataobj) > 0
    got = []
    for s in range(1, 13):
        values, ijk = read_matrix(SHERLOCK / "pmc_voxels" / f"pmc_nn_sherlock_movie_s{s}.mat", mask, 1976,
                                  key="rdata", kept_key="keptvox")
        own = zscore(roi_means(values, np.ones((len(ijk), 1), bool))[:, 0], ddof=1)  # MATLAB zscore
        got.append(isc_vs_group_mean(own, published["meantc"][:, 0], 17))
    # required: within 0.01; measured: 5e-8 (without the z-score the error is 0.022)
    assert np.abs(np.array(got) - published["roicorr"][0, :12]).max() < 1e-4


def test_published_isc_recomputes_a_table_made_the_published_way(tmp_path, rng):
    import scipy.io

    shared = rng.standard_normal(200)
    rois = [shared[:, None] + rng.standard_normal((200, 5)) for _ in range(4)]  # 4 subjects x 5 voxels
    means = np.stack([zscore(r.mean(axis=1), ddof=1) for r in rois])
    roicorr = [np.corrcoef(means[s], np.delete(means, s, axis=0).mean(axis=0))[0, 1] for s in range(4)]
    path = tmp_path / "roi_roicorr.mat"
    scipy.io.savemat(path, {"roicorr": np.array([roicorr]), "meantc": means.mean(axis=0)[:, None]})
    got = published_isc(rois[2], path, column=2)
    assert got["n_group"] == 4 and got["published"] == pytest.approx(roicorr[2])
    assert got["reproduced"] == pytest.approx(roicorr[2], abs=1e-10)
    with pytest.raises(ValueError, match="column 4 is outside its 4 subjects"):
        published_isc(rois[0], path, column=4)
