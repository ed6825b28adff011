"""The report's data section shows every kind of bad volume with its TRs, and the filled NaN samples."""

from giblet.report.html import _bad_trs


def test_bad_trs_lists_each_reason_with_its_tr_ranges():
    qc = {"n_bad_trs": {"nan": 0, "constant": 3, "repeated": 50, "outlier": 1},
          "bad_tr_ranges": {"nan": [], "constant": [[10, 11], [240, 242]], "repeated": [[1926, 1976]],
                            "outlier": [[77, 78]]}}
    assert _bad_trs(qc) == "constant: 3 (TRs 10-10, 240-241); repeated: 50 (TRs 1926-1975); outlier: 1 (TRs 77-77)"
    assert _bad_trs({"n_bad_trs": {"nan": 0}, "bad_tr_ranges": {"nan": []}}) == "none"
