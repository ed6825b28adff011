import numpy as np
import pytest

from giblet.features import FeatureTable
from giblet.timing import ScanTiming
from giblet.video import VideoConfig, run_extract_video
from giblet.video.image_model import load_image_model


@pytest.fixture
def tiny_vit(tmp_path):
    """A randomly initialised 1-layer ViT and its processor, saved like a downloaded model."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=32, patch_size=8)
    folder = tmp_path / "tiny-vit"
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_load_image_model_embeds_batch(tiny_vit):
    encoder = load_image_model(tiny_vit, device="cpu")
    frames = [np.full((18, 32, 3), level, np.uint8) for level in (0, 128, 255)]
    vectors = encoder(frames)
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    assert not np.allclose(vectors[0], vectors[2])
    np.testing.assert_allclose(encoder(frames[1:2])[0], vectors[1], atol=1e-5)


def test_load_image_model_offline_error(tmp_path):
    with pytest.raises(RuntimeError, match="could not be loaded offline .* or to null"):
        load_image_model(tmp_path / "no-such-model")


def test_run_extract_video_image_model_samples(tiny_vit, tmp_path, write_clip):
    times_s = np.arange(0, 3.0, 0.25)  # 4 fps, 3 s
    images = [np.full((36, 64, 3), int(40 + 15 * i), np.uint8) for i in range(len(times_s))]
    path = write_clip(tmp_path / "clip.mp4", images, times_s, rate=4)
    written = run_extract_video(path, tmp_path / "out", ScanTiming(1.5, (2,)),
                                VideoConfig(image_model=str(tiny_vit), image_sample_hz=1.0), progress=False)
    samples, trs = FeatureTable.load(written["embedding_samples"]), FeatureTable.load(written["embedding_tr"])
    np.testing.assert_allclose(samples.times_s, [0.0, 1.0, 2.0], atol=1e-3)  # first frame of every 1 s bin
    assert samples.values.shape == (3, 16) and trs.values.shape == (2, 16)
    np.testing.assert_allclose(trs.values[0], (samples.values[0] + 0.5 * samples.values[1]) / 1.5, atol=1e-5)
    np.testing.assert_allclose(trs.values[1], (0.5 * samples.values[1] + samples.values[2]) / 1.5, atol=1e-5)
    assert trs.meta["image_model"] == str(tiny_vit)
