import torch

from giblet.models.heads import TextHead
from tests.models.conftest import tiny_config


def test_text_head_shape():
    assert TextHead(tiny_config())(torch.randn(2, 3, 16)).shape == (2, 3, 7)
