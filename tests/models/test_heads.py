import torch

from giblet.models import TextHead, ThumbnailHead
from tests.models.conftest import tiny_config


def test_thumbnail_head_shape_and_range():
    out = ThumbnailHead(tiny_config())(100 * torch.randn(2, 3, 16))
    assert out.shape == (2, 3, 3, 8, 12)
    assert out.min() >= 0 and out.max() <= 1


def test_text_head_shape():
    assert TextHead(tiny_config())(torch.randn(2, 3, 16)).shape == (2, 3, 7)
