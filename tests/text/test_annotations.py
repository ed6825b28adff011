import numpy as np
import pandas as pd
import pytest

from giblet.text import AnnotationFormat, read_annotations
from giblet.text.annotations import read_table
from giblet.text.labels import label_indicators
from giblet.text.tr_grid import overlap_mean
from giblet.timing import ScanTiming
from tests.conftest import SHARED_DATA

SHERLOCK_SHEET = SHARED_DATA / "sherlock" / "annotations" / "Sherlock_Segments_1000_NN_2017.xlsx"
needs_sherlock = pytest.mark.skipif(not SHERLOCK_SHEET.exists(), reason="needs ../shared/data (the Sherlock annotation sheet)")
SHERLOCK_TIMING = ScanTiming(tr_s=1.5, run_n_trs=(946, 1030))
SHERLOCK = dict(text_column="Scene Details - A Level", label_columns=["Music Presence"])
DEMO = dict(onset_column="onset", offset_column="offset", text_column="description", label_columns=["sound"])


def _read(path, run_n_trs, start_offset_s=0.0, **layout):
    """Annotations on a 1.5 s TR grid of ``run_n_trs`` (an int: one run), in the demo's layout unless overridden."""
    run_n_trs = (run_n_trs,) if isinstance(run_n_trs, int) else run_n_trs
    return read_annotations(path, ScanTiming(1.5, run_n_trs, start_offset_s), AnnotationFormat(**{**DEMO, **layout}))


def _write(path, rows, columns=("onset ", "offset ", "description ", "sound ")):
    table = pd.DataFrame(rows, columns=list(columns))
    if path.suffix == ".xlsx":
        table.to_excel(path, index=False)
    else:
        table.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


DEMO_ROWS = [(0.0, 2.0, "a dog barks", "speech"), (2.0, 3.5, "a car passes", "music"), (3.5, 6.0, "rain falls", None)]


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".xlsx"])
def test_read_annotations_formats_with_header_spaces(tmp_path, suffix):
    annotations = _read(_write(tmp_path / f"a{suffix}", DEMO_ROWS), 4)
    np.testing.assert_allclose(annotations.onset_s, [0.0, 2.0, 3.5])
    np.testing.assert_allclose(annotations.offset_s, [2.0, 3.5, 6.0])
    assert annotations.texts == ("a dog barks", "a car passes", "rain falls")
    assert annotations.labels["sound"].tolist() == ["speech", "music", None]
    assert annotations.report["coverage"] == 1.0 and annotations.report["warnings"] == []


def test_read_table_strips_headers(tmp_path):
    assert list(read_table(_write(tmp_path / "a.tsv", DEMO_ROWS)).columns) == ["onset", "offset", "description", "sound"]


def test_read_annotations_segment_boundary_exact(tmp_path):
    rows = [(0.0, 1.5, "first", "x"), (1.5, 3.0, "second", "y")]
    annotations = _read(_write(tmp_path / "a.tsv", rows), 2)
    from giblet.text.tr_grid import interval_tr_weights

    weights = interval_tr_weights(annotations.onset_s, annotations.offset_s, 2, 1.5).toarray()
    np.testing.assert_allclose(weights, [[1.5, 0.0], [0.0, 1.5]])  # a segment ending at a TR edge stays out of the next TR


def test_read_annotations_tr_columns_one_based_inclusive(tmp_path):
    rows = [(1, 8, "cartoon", "music"), (9, 10, "popcorn", "music")]
    annotations = _read(_write(tmp_path / "a.tsv", rows), 10, time_unit="tr")
    np.testing.assert_allclose(annotations.onset_s, [0.0, 12.0])
    np.testing.assert_allclose(annotations.offset_s, [12.0, 15.0])


def test_read_annotations_start_offset(tmp_path):
    annotations = _read(_write(tmp_path / "a.tsv", DEMO_ROWS), 3, start_offset_s=1.5)
    np.testing.assert_allclose(annotations.onset_s, [-1.5, 0.5, 2.0])  # before the scan: kept for the HRF
    np.testing.assert_allclose(annotations.offset_s, [0.5, 2.0, 4.5])
    np.testing.assert_array_equal(annotations.runs, [0, 0, 0])


def test_read_annotations_global_segment_spans_runs(tmp_path):
    rows = [(0.0, 4.0, "a", "x"), (4.0, 6.0, "b", "y")]
    annotations = _read(_write(tmp_path / "a.tsv", rows), (2, 2))
    np.testing.assert_allclose(annotations.offset_s, [4.0, 6.0])  # one film on one clock: no clipping at 3 s
    np.testing.assert_array_equal(annotations.runs, [0, 1])


def test_read_annotations_time_restart_error(tmp_path):
    rows = [(0, 3, "a", "x"), (3, 6, "b", "x"), (0, 3, "c", "y"), (3, 6, "d", "y")]
    with pytest.raises(ValueError, match=r"a.tsv: 'onset' goes back in time at sheet row 4 \(3 s -> 0 s.*times_restart_per_run=true"):
        _read(_write(tmp_path / "a.tsv", rows), (4, 4))


def test_read_annotations_restart_per_run_adds_run_offset(tmp_path):
    rows = [(0, 3, "a", "x"), (3, 7, "b", "x"), (0, 3, "c", "y"), (3, 6, "d", "y")]
    with pytest.warns(UserWarning, match=r"sheet rows \[3\] run past their run's edge; clipped"):
        annotations = _read(_write(tmp_path / "a.tsv", rows), (4, 4), times_restart_per_run=True)
    np.testing.assert_allclose(annotations.onset_s, [0, 3, 6, 9])
    np.testing.assert_allclose(annotations.offset_s, [3, 6, 9, 12])  # row 3 would leak 1 s into run 1
    np.testing.assert_array_equal(annotations.runs, [0, 0, 1, 1])


def test_read_annotations_restart_count_error(tmp_path):
    with pytest.raises(ValueError, match=r"restarts at zero 0 time\(s\) .* but the scan has 2 runs"):
        _read(_write(tmp_path / "a.tsv", DEMO_ROWS), (2, 2), times_restart_per_run=True)


def test_read_annotations_low_coverage_error(tmp_path):
    with pytest.raises(ValueError, match=r"a.tsv: segments cover 40% of the 10 TRs \(need 90%\)"):
        _read(_write(tmp_path / "a.tsv", DEMO_ROWS), 10)


def test_read_annotations_uncovered_trs_warning(tmp_path):
    rows = [(0.0, 1.5, "a", "x"), (3.0, 6.0, "b", "x")]
    with pytest.warns(UserWarning, match=r"1 of 4 TRs have no annotation \(first: \[1\]\)"):
        annotations = _read(_write(tmp_path / "a.tsv", rows), 4, min_coverage=0.5)
    assert annotations.report["uncovered_trs"] == [1]


def test_read_annotations_missing_text_dropped(tmp_path):
    rows = [(0.0, 3.0, "a", "x"), (3.0, 4.0, None, "x"), (4.0, 6.0, "c", "y")]
    with pytest.warns(UserWarning, match=r"a.tsv: sheet rows \[3\] have no 'description'; dropped"):
        annotations = _read(_write(tmp_path / "a.tsv", rows), 4)
    assert annotations.texts == ("a", "c")
    np.testing.assert_array_equal(annotations.rows, [2, 4])


def test_read_annotations_untimed_rows_between_abutting_rows_skipped(tmp_path):
    """Rows without times where the clock leaves no room, as Sherlock's segments 481-482 after scan 1."""
    rows = [(None, None, "title card", "x"), (0.0, 3.0, "a", "x"), (None, None, "off the scan", "x"),
            (3.0, 6.0, "b", "y"), (None, None, None, None), (None, None, "notes", None)]
    with pytest.warns(UserWarning, match=r"a.tsv: sheet rows \[2, 4, 7\] have no times and take no time"):
        annotations = _read(_write(tmp_path / "a.tsv", rows), 4)
    assert annotations.texts == ("a", "b")
    np.testing.assert_array_equal(annotations.rows, [3, 5])  # the empty row 6 is skipped without a word
    assert annotations.report["coverage"] == 1.0


@pytest.mark.parametrize("missing", [(None, None), (3.0, None), (None, 4.0)])
def test_read_annotations_missing_time_error(tmp_path, missing):
    """Regression (issue 19): rows without times were dropped with a warning, and their TRs got zero features."""
    rows = [(0.0, 3.0, "a", "x"), (*missing, "b", "x"), (4.5, 6.0, "c", "y")]
    with pytest.raises(ValueError, match=r"a.tsv: sheet rows \[3\] lack 'onset' or 'offset'.*fill in their times"):
        _read(_write(tmp_path / "a.tsv", rows), 4)


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".xlsx"])
def test_read_annotations_decimal_comma_error(tmp_path, suffix):
    """Regression (issue 19): '12,5' was dropped with a warning, leaving its TRs without features."""
    rows = [("0", "1,5", "a", "x"), ("1,5", "3", "b", "x"), ("3", "4,5", "c", "y"), ("4,5", "6", "d", "y")]
    with pytest.raises(ValueError, match=rf"a{suffix}: 'onset' is not a number at sheet rows \[3, 5\] "
                                         r"\(\['1,5', '4,5'\]\); .*decimal point \(12.5, not 12,5\)"):
        _read(_write(tmp_path / f"a{suffix}", rows), 4)


def test_read_annotations_overlaps_weighted_and_reported(tmp_path, caplog):
    rows = [(0.0, 3.0, "a", "x"), (2.0, 4.5, "b", "y"), (4.5, 6.0, "c", "x")]
    with caplog.at_level("WARNING", logger="giblet.text.annotations"):
        annotations = _read(_write(tmp_path / "a.tsv", rows), 4)
    assert annotations.report["n_overlapping_rows"] == 1 and annotations.report["overlapping_rows"] == [3]
    assert annotations.report["warnings"] == []
    assert f"{tmp_path / 'a.tsv'}: 1 segment(s) overlap an earlier one (first sheet rows: [3])" in caplog.text
    indicators, names = label_indicators(annotations.labels)
    fractions = overlap_mean(annotations.onset_s, annotations.offset_s, indicators, 4, 1.5)[0]
    assert names == ("sound=x", "sound=y")
    np.testing.assert_allclose(fractions, [[1, 0], [1.5 / 2.5, 1 / 2.5], [0, 1], [1, 0]], atol=1e-6)  # TR 1: both, by seconds


def test_read_table_latin1_error(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("onset,offset,description\n0,6,un caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"a.csv: not UTF-8: byte 35 \(line 2\) is b'\\xe9'; save the file as UTF-8"):
        read_table(path)


def test_read_table_utf8_bom(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_bytes("onset\toffset\tdescription\n0\t6\tun caf\u00e9\n".encode("utf-8-sig"))
    table = read_table(path)
    assert list(table.columns) == ["onset", "offset", "description"] and table["description"][0] == "un caf\u00e9"


def test_read_annotations_missing_column_error(tmp_path):
    with pytest.raises(ValueError, match=r"no column\(s\) \['scene'\]; the columns are \['onset', 'offset', 'description', 'sound'\]"):
        _read(_write(tmp_path / "a.tsv", DEMO_ROWS), 4, label_columns=["scene"])


def test_read_annotations_end_before_start_error(tmp_path):
    with pytest.raises(ValueError, match=r"sheet rows \[2\] end before they start"):
        _read(_write(tmp_path / "a.tsv", [(3.0, 1.0, "a", "x")]), 2)


def test_read_annotations_unknown_format_error(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(ValueError, match=r"a.json: annotation format '.json' must be one of"):
        _read(tmp_path / "a.json", 2)


def test_read_annotations_forward_fill(tmp_path):
    rows = [(0.0, 1.5, "a", "scene 1"), (1.5, 3.0, "b", " "), (3.0, 4.5, "c", "scene 2")]
    annotations = _read(_write(tmp_path / "a.tsv", rows), 3, forward_fill_columns=["sound"])
    assert annotations.labels["sound"].tolist() == ["scene 1", "scene 1", "scene 2"]


@pytest.mark.real
@needs_sherlock
def test_sherlock_tr_columns_across_scan_restart():
    with pytest.warns(UserWarning, match=r"sheet rows \[482, 483\] have no times and take no time"):
        annotations = read_annotations(SHERLOCK_SHEET, SHERLOCK_TIMING, AnnotationFormat(
            onset_column="Start Time (TRs, 1.5s)", offset_column="End Time (TRs, 1.5s)", time_unit="tr", **SHERLOCK))
    segment = dict(zip(annotations.rows - 1, zip(annotations.onset_s, annotations.offset_s, annotations.runs)))
    assert segment[1] == (0.0, 12.0, 0)  # TRs 1-8
    assert segment[480] == (945 * 1.5, 946 * 1.5, 0)  # TR 946, the last of scan 1
    assert segment[501] == (994 * 1.5, 995 * 1.5, 1)  # 72 s into scan 2 = TR 995
    assert segment[502][0] == 995 * 1.5  # 74 s into scan 2 = TR 996
    assert annotations.report["coverage"] == 1.0 and len(annotations.texts) == 998
    # 89 segments end in the TR where the next one starts (the seconds columns do not overlap)
    assert annotations.report["n_overlapping_rows"] == 89
    assert annotations.report["overlapping_rows"][:5] == [11, 15, 17, 21, 31]


@pytest.mark.real
@needs_sherlock
def test_sherlock_seconds_at_face_value_error():
    with pytest.raises(ValueError, match=r"'Start Time \(s\)' goes back in time at sheet row 484 \(1420 s -> 0 s"):
        read_annotations(SHERLOCK_SHEET, SHERLOCK_TIMING, AnnotationFormat(
            onset_column="Start Time (s)", offset_column="End Time (s)", **SHERLOCK))


@pytest.mark.real
@needs_sherlock
def test_sherlock_seconds_per_run_agree_with_tr_columns():
    with pytest.warns(UserWarning):
        seconds = read_annotations(SHERLOCK_SHEET, SHERLOCK_TIMING, AnnotationFormat(
            onset_column="Start Time (s)", offset_column="End Time (s)", times_restart_per_run=True, **SHERLOCK))
        trs = read_annotations(SHERLOCK_SHEET, SHERLOCK_TIMING, AnnotationFormat(
            onset_column="Start Time (TRs, 1.5s)", offset_column="End Time (TRs, 1.5s)", time_unit="tr", **SHERLOCK))
    np.testing.assert_array_equal(seconds.rows, trs.rows)
    np.testing.assert_array_equal(seconds.runs, trs.runs)
    assert np.abs(seconds.onset_s - trs.onset_s).max() <= 0.5  # whole seconds vs TR edges
    assert seconds.onset_s[seconds.rows == 503][0] == 946 * 1.5 + 74  # segment 502
    assert seconds.report["n_overlapping_rows"] == 0


def test_read_annotations_time_unit_error(tmp_path):
    with pytest.raises(ValueError, match=r"time_unit must be one of \['s', 'tr'\], got 'ms'"):
        _read(_write(tmp_path / "a.tsv", DEMO_ROWS), 4, time_unit="ms")
