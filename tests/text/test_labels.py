import numpy as np
import pandas as pd

from giblet.text.labels import label_indicators


def test_label_indicators_one_hot_sorted():
    labels = pd.DataFrame({"sound": ["speech", "music", None, "speech"], "scene": ["b", "a", "a", None]})
    values, names = label_indicators(labels)
    assert names == ("sound=music", "sound=speech", "scene=a", "scene=b")
    np.testing.assert_array_equal(values, [[0, 1, 0, 1], [1, 0, 1, 0], [0, 0, 1, 0], [0, 1, 0, 0]])
    assert values.dtype == np.float32


def test_label_indicators_separator_multi_hot():
    labels = pd.DataFrame({"Name - All": ["John, Soldiers", "Soldiers", "John,John"]})
    values, names = label_indicators(labels, separator=",")
    assert names == ("Name - All=John", "Name - All=Soldiers")
    np.testing.assert_array_equal(values, [[1, 1], [0, 1], [1, 0]])


def test_label_indicators_no_columns():
    values, names = label_indicators(pd.DataFrame(index=range(3)))
    assert values.shape == (3, 0) and names == ()
