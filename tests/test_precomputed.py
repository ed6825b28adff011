"""Precomputed per-TR stimulus features become a stimulus-time feature table."""

import numpy as np
import pytest
import scipy.io

from giblet.features import FeatureTable
from giblet.precomputed import run_import_features
from tests.conftest import SHARED_DATA


def test_import_features_sets_nan_to_zero_and_lists_them(tmp_path):
    envelope = np.array([np.nan, np.nan, 1.0, 2.0, 3.0])
    scipy.io.savemat(tmp_path / "feat.mat", {"audio": envelope[:, None], "video": np.ones((5, 1))})
    specs = [{"path": tmp_path / "feat.mat", "key": "audio", "name": "env"},
             {"path": tmp_path / "feat.mat", "key": "video", "name": "lum"}]
    table = FeatureTable.load(run_import_features(specs, tmp_path / "out.npz", tr_s=1.5, n_trs=5))
    np.testing.assert_array_equal(table.values[:, 0], [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(table.times_s, [0, 1.5, 3.0, 4.5, 6.0])
    assert table.names == ("env", "lum") and table.meta["nan_trs"] == {"env": [0, 1], "lum": []}


def test_import_features_names_file_and_key_on_wrong_length(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros(7))
    with pytest.raises(ValueError, match=r"f.npy: 'array' has shape \(7,\), expected one value per TR \(5\)"):
        run_import_features([{"path": tmp_path / "f.npy", "key": "array", "name": "x"}],
                            tmp_path / "o.npz", tr_s=1.5, n_trs=5)
    with pytest.raises(ValueError, match=r"no array 'audio'; it holds \['array'\]"):
        run_import_features([{"path": tmp_path / "f.npy", "key": "audio", "name": "x"}],
                            tmp_path / "o.npz", tr_s=1.5, n_trs=7)


@pytest.mark.real
@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
def test_import_features_sherlock_envelope_has_26_nan_trs_per_run(tmp_path):
    path = SHARED_DATA / "sherlock" / "stimulus_features" / "behavior-sensory-sherlock.mat"
    table = FeatureTable.load(run_import_features([{"path": path, "key": "audio", "name": "env"}],
                                                  tmp_path / "o.npz", tr_s=1.5, n_trs=1976))
    assert table.meta["nan_trs"]["env"] == list(range(26)) + list(range(946, 972))
