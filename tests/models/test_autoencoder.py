import functools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import giblet.models
from giblet.models import GibletAutoencoder, lesion
from giblet.models.losses import fmri_losses, reconstruction_losses
from tests.models.conftest import DEVICES, fitted, make_batch, tiny_config

STIM_KEYS = ("audio_codes", "audio_mask", "audio_descriptor", "video", "text")


def _stim(batch, keys=STIM_KEYS):
    return {k: batch[k] for k in keys}


def _per_tr_change(a, b):
    """(B, T) total absolute change of a (B, T, ...) output."""
    return (a - b).abs().flatten(2).sum(-1)


def _changed_trs(a, b):
    return sorted(set(torch.nonzero(_per_tr_change(a, b).sum(0) > 1e-6).flatten().tolist()))


@pytest.mark.parametrize("device", DEVICES)
def test_autoencoder_paths_shapes(device):
    cfg = tiny_config()
    torch.manual_seed(0)
    model = fitted(GibletAutoencoder(cfg)).to(device).eval()
    batch = make_batch(cfg, device=device)
    voxels = model.encode(batch, "sub-02")
    assert voxels.shape == (2, 12, 9)
    predictions = model.decode(batch["bold/sub-01"], "sub-01")
    assert predictions["audio"].shape == (2, 12, 4)  # the audio descriptor
    log_probs = model.audio_head(predictions["audio"])
    assert log_probs.shape == (2, 12, 2, 16)  # per TR and codebook
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 12, 2, device=device))
    assert predictions["video"].shape == (2, 12, 5 + 3)  # low-level features and thumbnail components
    thumbs = model.thumbnails(predictions["video"])
    assert thumbs.shape == (2, 12, 3, 8, 12) and thumbs.min() >= 0 and thumbs.max() <= 1
    assert predictions["text"].shape == (2, 12, 7)
    middle, auto = model.autoencode(batch, "sub-01")
    assert middle.shape == (2, 12, 12) and auto.keys() == predictions.keys()


@pytest.mark.parametrize("modalities", [("audio",), ("video",), ("text",), ("video", "text"), ("audio", "text")])
def test_autoencoder_any_modality_subset(modalities):
    cfg = tiny_config(modalities=modalities)
    model = GibletAutoencoder(cfg).eval()
    batch = make_batch(cfg)
    voxels, predictions = model.autoencode(batch, "sub-01")
    assert voxels.shape == (2, 12, 12) and set(predictions) == set(modalities)
    assert set(reconstruction_losses(predictions, batch, batch["tr_valid"])) == set(modalities) & {"text"}


def test_autoencoder_stimulus_may_lack_a_modality():
    cfg = tiny_config()
    model = GibletAutoencoder(cfg).eval()
    batch = make_batch(cfg)
    audio_only = model.encode(_stim(batch, ("audio_codes", "audio_mask", "audio_descriptor")), "sub-01")
    drop_others = torch.tensor([[True, False, False]] * 2)
    torch.testing.assert_close(audio_only, model.encode(batch, "sub-01", keep=drop_others))


def test_autoencoder_encoder_routes_add_to_the_trunk_and_follow_keep():
    cfg = tiny_config()
    model = fitted(GibletAutoencoder(cfg)).eval()
    batch = make_batch(cfg)
    trunk = model.readout(model.embed_stimulus(batch), "sub-01")
    routes = {m: model.encoder_routes[m]["sub-01"](batch[key])
              for m, key in (("audio", "audio_descriptor"), ("video", "video"), ("text", "text"))}
    assert routes["audio"][:, 4:].abs().min() > 0  # every voxel is driven by the sound of the last 4 TRs
    torch.testing.assert_close(model.encode(batch, "sub-01"), trunk + sum(routes.values()))
    no_audio = torch.tensor([[False, True, True]] * 2)
    torch.testing.assert_close(model.encode(batch, "sub-01", keep=no_audio),
                               model.readout(model.embed_stimulus(batch, no_audio), "sub-01") + routes["video"]
                               + routes["text"])


@pytest.mark.parametrize("delays, expected", [((1, 2, 3, 4), [6, 7, 8, 9]), ((0, 2), [5, 7])])
@pytest.mark.parametrize("key", ["audio_codes", "audio_descriptor", "video", "text"])
def test_autoencoder_encoder_is_causal(delays, expected, key):
    cfg = tiny_config(encoder_delays_trs=delays)
    model = fitted(GibletAutoencoder(cfg)).eval()  # the audio route too
    batch = make_batch(cfg)
    changed = dict(batch)
    changed[key] = batch[key].clone()
    if key == "audio_codes":
        changed[key][:, 5, :, 0] = (batch[key][:, 5, :, 0] + 1) % cfg.codebook_size
    else:
        changed[key][:, 5] += 1.0
    assert _changed_trs(model.encode(batch, "sub-01"), model.encode(changed, "sub-01")) == expected


@pytest.mark.parametrize("delays, expected", [((1, 2, 3, 4), [3, 4, 5, 6]), ((0, 3), [4, 7])])
def test_autoencoder_decoder_is_anticausal(delays, expected):
    cfg = tiny_config(decoder_delays_trs=delays)
    model = fitted(GibletAutoencoder(cfg)).eval()
    bold = make_batch(cfg)["bold/sub-01"]
    changed = bold.clone()
    changed[:, 7] += 1.0
    before, after = model.decode(bold, "sub-01"), model.decode(changed, "sub-01")
    for modality in cfg.modalities:
        assert _changed_trs(before[modality], after[modality]) == expected, modality


@pytest.mark.parametrize("mode", ["zero", "mean", "noise"])
def test_autoencoder_lesion_of_all_voxels_blinds_the_decoder(mode):
    cfg = tiny_config()
    model = fitted(GibletAutoencoder(cfg)).eval()
    a, b = make_batch(cfg, seed=0), make_batch(cfg, seed=1)
    all_voxels = torch.ones(12, dtype=torch.bool)
    stats = {"mean": torch.linspace(-1, 1, 12), "std": torch.full((12,), 0.5)}
    seeded = [functools.partial(lesion, roi=all_voxels, mode=mode, **stats,
                                generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    _, lesioned_a = model.autoencode(a, "sub-01", lesion=seeded[0])
    _, lesioned_b = model.autoencode(b, "sub-01", lesion=seeded[1])
    _, intact_a = model.autoencode(a, "sub-01")
    _, intact_b = model.autoencode(b, "sub-01")
    for m in cfg.modalities:
        torch.testing.assert_close(lesioned_a[m], lesioned_b[m])
        # intact: every TR but the last (decoded from BOLD after the chunk only) tells a from b
        assert _per_tr_change(intact_a[m], intact_b[m])[:, :-1].min() > 0


def test_autoencoder_partial_lesion_changes_only_through_roi():
    cfg = tiny_config(decoder_delays_trs=(0,))
    model = fitted(GibletAutoencoder(cfg)).eval()
    batch = make_batch(cfg)
    roi = torch.zeros(12, dtype=torch.bool)
    roi[:4] = True
    voxels, intact = model.autoencode(batch, "sub-01")
    _, lesioned = model.autoencode(batch, "sub-01", lesion=functools.partial(lesion, roi=roi))
    assert _per_tr_change(intact["text"], lesioned["text"]).min() > 0
    torch.testing.assert_close(lesioned["text"], model.decode(torch.where(roi, 0.0, voxels), "sub-01")["text"])


def _leaf_modules(model):
    return [m for m in model.modules() if not list(m.children())]


def test_autoencoder_code_indices_reach_only_embeddings():
    cfg = tiny_config()
    model = GibletAutoencoder(cfg).eval()
    seen = []

    def check(module, args):
        dtypes = [a.dtype for a in args if torch.is_tensor(a)]
        seen.append(type(module))
        assert all(d.is_floating_point for d in dtypes), f"{type(module).__name__} got {dtypes}"

    leaves = [m for m in _leaf_modules(model) if not isinstance(m, nn.Embedding)]
    handles = [m.register_forward_pre_hook(check) for m in leaves]
    batch = make_batch(cfg)
    _, predictions = model.autoencode(batch, "sub-01")
    model.audio_head(predictions["audio"])
    for h in handles:
        h.remove()
    assert {nn.Linear, nn.Conv1d, nn.LayerNorm} <= set(seen)


def test_autoencoder_codes_act_only_through_their_embedding_rows(rng):
    cfg = tiny_config()
    vectors = rng.standard_normal((2, 16, 8)).astype(np.float32)
    vectors[0, 5] = vectors[0, 3]  # codes 3 and 5 of codebook 0 share a vector
    model = fitted(GibletAutoencoder(cfg, codebook_vectors=vectors)).eval()
    batch = make_batch(cfg)
    codes = batch["audio_codes"].clone()
    codes[:, :, 0, :] = torch.where(batch["audio_mask"], 3, -1)
    swapped, different = codes.clone(), codes.clone()
    swapped[:, :, 0] = torch.where(batch["audio_mask"], 5, -1)
    different[:, :, 0] = torch.where(batch["audio_mask"], 6, -1)
    out = model.encode({**batch, "audio_codes": codes}, "sub-01")
    torch.testing.assert_close(model.encode({**batch, "audio_codes": swapped}, "sub-01"), out, rtol=0, atol=0)
    assert (model.encode({**batch, "audio_codes": different}, "sub-01") - out).abs().max() > 1e-4


def test_models_source_never_casts_codes_to_float():
    cast = re.compile(r"\.(float|double|half|bfloat16)\(|float(16|32|64)|\.to\(|\.type\(")
    offenders = [
        f"{path.name}:{n}: {line.strip()}"
        for path in Path(giblet.models.__file__).parent.glob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bcodes\b", line) and cast.search(line)
    ]
    assert not offenders


def test_autoencoder_modality_dropout_keeps_one_modality_in_training():
    cfg = tiny_config(modality_dropout_p=0.95)
    model = fitted(GibletAutoencoder(cfg)).train()
    batch = make_batch(cfg, batch=16)
    video_only = _stim(batch, ("video",))
    other_video = {"video": video_only["video"] + 1.0}
    torch.manual_seed(0)
    a = model.encode(video_only, "sub-01")
    torch.manual_seed(0)
    b = model.encode(other_video, "sub-01")
    assert _per_tr_change(a, b)[:, 4:].min() > 0  # the only modality is never dropped
    torch.manual_seed(0)
    full = model.encode(batch, "sub-01")
    torch.manual_seed(1)
    assert (model.encode(batch, "sub-01") - full).abs().max() > 0  # with three, p = 0.95 drops some
    state = torch.get_rng_state()
    model.eval().encode(batch, "sub-01")
    assert torch.equal(torch.get_rng_state(), state)  # no dropout draws outside training
    explicit = torch.tensor([[True, False, True]] * 16)
    changed_video = {**batch, "video": batch["video"] + 1.0}
    torch.testing.assert_close(model.encode(batch, "sub-01", keep=explicit),
                               model.encode(changed_video, "sub-01", keep=explicit))


def test_autoencoder_deterministic_for_a_seed():
    cfg = tiny_config(dropout=0.2)
    batch = make_batch(cfg)
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = GibletAutoencoder(cfg).train()
        outputs.append(model.autoencode(batch, "sub-02")[1]["text"])
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_autoencoder_state_dict_round_trip():
    cfg = tiny_config(train_codebooks=True)
    torch.manual_seed(0)
    model = fitted(GibletAutoencoder(cfg)).eval()
    model.audio_decoders["sub-01"].set_weights([2, 5], range(4), [0.1] * 8, [2.0] * 8, torch.ones(8, 4), [0.5] * 4)
    torch.manual_seed(1)
    restored = GibletAutoencoder(cfg).eval()  # its window decoders select no voxel yet: loading resizes them
    restored.load_state_dict(model.state_dict())
    assert restored.audio_decoders["sub-01"].inputs.tolist() == [2, 5]
    batch = make_batch(cfg)
    for subject in cfg.n_voxels:
        for new, old in zip(restored.autoencode(batch, subject), model.autoencode(batch, subject)):
            torch.testing.assert_close(new["audio"] if isinstance(new, dict) else new,
                                       old["audio"] if isinstance(old, dict) else old)


def test_autoencoder_routes_are_fitted_not_trained():
    cfg = tiny_config(train_codebooks=True)
    model = fitted(GibletAutoencoder(cfg))
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert not any(name.startswith(("code_model.", "audio_decoders.", "encoder_routes.", "picture_decoders.",
                                       "text_decoders."))
                   for name in trained)
    assert "towers.audio.embedding.tables.1.weight" in trained  # the codebook input tables may train
    assert not GibletAutoencoder(tiny_config()).towers["audio"].embedding.tables[0].weight.requires_grad


def test_autoencoder_overfits_a_tiny_batch():
    cfg = tiny_config(modality_dropout_p=0.0)
    torch.manual_seed(0)
    model = GibletAutoencoder(cfg).train()
    batch = make_batch(cfg, batch=2, n_trs=10)
    valid = batch["tr_valid"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def step():
        voxels, auto = model.autoencode(batch, "sub-01")
        bold = batch["bold/sub-01"]
        decoded = reconstruction_losses(model.decode(bold, "sub-01"), batch, valid)
        terms = [*fmri_losses(voxels, bold, valid).values(),
                 *reconstruction_losses(auto, batch, valid).values(), *decoded.values()]
        return sum(terms)

    first = step()
    for _ in range(60):
        optimizer.zero_grad()
        step().backward()
        optimizer.step()
    assert step().item() < 0.5 * first.item()


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda b: {**b, "audio_codes": b["audio_codes"].float()}, "must be integer code indices"),
        (lambda b: {**b, "audio_codes": b["audio_codes"].clamp(min=0) + 16}, r"must lie in \[0, 16\)"),
        (lambda b: {**b, "audio_mask": b["audio_mask"].long()}, "audio_mask must be bool"),
        (lambda b: {k: v for k, v in b.items() if k != "audio_mask"}, "not 'audio_mask'"),
        (lambda b: {**b, "video": b["video"][:, :, :3]}, r"stimulus\['video'\] has shape \(2, 12, 3\)"),
        (lambda b: {**b, "text": b["text"][:, :5]}, r"\(B, T\) = \(2, 12\)"),
        (lambda b: {"thumbs": b["thumbs"]}, "none of the model's inputs"),
    ],
)
def test_autoencoder_rejects_bad_stimulus(change, match):
    cfg = tiny_config()
    model = GibletAutoencoder(cfg)
    with pytest.raises(ValueError, match=match):
        model.encode(change(make_batch(cfg)), "sub-01")


def test_autoencoder_rejects_bad_subject_and_voxels():
    cfg = tiny_config()
    model = GibletAutoencoder(cfg)
    batch = make_batch(cfg)
    with pytest.raises(ValueError, match=r"unknown subject 'sub-09'; the model has \['sub-01', 'sub-02'\]"):
        model.encode(batch, "sub-09")
    with pytest.raises(ValueError, match=r"voxels for 'sub-02' must be float \(B, T, 9\)"):
        model.decode(batch["bold/sub-01"], "sub-02")
    with pytest.raises(ValueError, match="no audio head"):
        GibletAutoencoder(tiny_config(modalities=("text",))).audio_head
