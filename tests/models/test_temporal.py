import torch

from giblet.models.temporal import DelayMixer, shift_trs


def test_shift_trs_past_future_and_zero_fill():
    x = torch.arange(1.0, 6.0).reshape(1, 5, 1)
    assert shift_trs(x, 2).flatten().tolist() == [0, 0, 1, 2, 3]
    assert shift_trs(x, -1).flatten().tolist() == [2, 3, 4, 5, 0]
    assert shift_trs(x, 0).flatten().tolist() == [1, 2, 3, 4, 5]
    assert shift_trs(x, 7).flatten().tolist() == [0, 0, 0, 0, 0]
    assert shift_trs(x, -7).flatten().tolist() == [0, 0, 0, 0, 0]


def test_delay_mixer_is_fir_at_its_delays():
    mixer = DelayMixer(1, (1, 3))
    with torch.no_grad():
        mixer.mix.weight.copy_(torch.tensor([[10.0, 1.0]]))
        mixer.mix.bias.zero_()
    impulse = torch.zeros(1, 8, 1)
    impulse[0, 2] = 1.0
    assert mixer(impulse).flatten().tolist() == [0, 0, 0, 10, 0, 1, 0, 0]
