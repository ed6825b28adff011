import torch

from giblet.models import AutoencoderConfig, GibletAutoencoder, count_parameters
from giblet.models.size import parameter_counts
from tests.models.conftest import tiny_config


def _meta_model(config):
    with torch.device("meta"):  # sized without allocating
        return GibletAutoencoder(config)


def test_count_parameters_demo_matches_documented():
    model = _meta_model(AutoencoderConfig(n_voxels={f"sub-0{i}": 450 for i in range(1, 5)}))
    assert count_parameters(model, trainable_only=True) == 393_289
    # frozen: the codec tables of the audio input and the code model (8 codebooks x 1024 codes x (32 bands + 1))
    assert count_parameters(model) == 393_289 + 8 * 1024 * 128 + 8 * 1024 * 33
    parts = parameter_counts(model, trainable_only=True)
    assert parts["readouts"] == 4 * (64 * 450 + 450) and parts["readins"] == 4 * (450 * 64 + 64)
    assert sum(parts.values()) == 393_289 and "code_model" not in parts


def test_count_parameters_sherlock_low_rank_readout():
    n_voxels = {f"s{i}": 69_047 for i in range(1, 18)}
    full = count_parameters(_meta_model(AutoencoderConfig(n_voxels=n_voxels)), trainable_only=True)
    low = count_parameters(_meta_model(AutoencoderConfig(n_voxels=n_voxels, readout_rank=16)), trainable_only=True)
    assert round(full / 1e6, 1) == 151.6 and round(low / 1e6, 1) == 38.9
    per_subject_saving = (64 * 69_047 - (64 * 16 + 16 * 69_047)) + (69_047 * 64 - (69_047 * 16 + 16 * 64))
    assert full - low == 17 * per_subject_saving


def test_count_parameters_counts_every_parameter_once_and_the_code_model_as_frozen():
    model = GibletAutoencoder(tiny_config(train_codebooks=True))
    in_state_dict = sum(v.numel() for v in model.state_dict(keep_vars=True).values()
                        if isinstance(v, torch.nn.Parameter))
    assert count_parameters(model) == in_state_dict
    assert sum(parameter_counts(model).values()) == count_parameters(model)
    code_model = 2 * 16 * 4 + 2 * 16  # 2 codebooks x 16 codes x (4 descriptor features + 1)
    assert count_parameters(model, trainable_only=True) == in_state_dict - code_model
