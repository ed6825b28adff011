"""Report tables show every row, say how many, and scroll inside the page."""

import pandas as pd

from giblet.report.html import _table


def test_table_shows_every_row_with_its_count():
    frame = pd.DataFrame({"roi": [f"roi{i}" for i in range(640)], "r": [i / 1000 for i in range(640)]})
    html = str(_table(frame))
    assert "640 rows" in html
    assert html.count("<tr") == 641  # header + every row
    assert "roi639" in html and "0.639" in html
    assert "class='table-scroll'" in html


def test_empty_table_says_not_available():
    assert "not available" in str(_table(pd.DataFrame()))
    assert "not available" in str(_table(None))
