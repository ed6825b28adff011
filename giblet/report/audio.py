"""The sound section of a subject's page: the evaluation WAVs as players (copied beside the page as 16-bit PCM)
and the waveform scores."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.io import wavfile

from giblet.io import write_bytes
from giblet.outputs import REPORT_AUDIO_SUFFIX

__all__ = ["AUDIO_KINDS", "WAVEFORM_BETTER", "lesion_label", "waveform_table", "audio_players"]

#: WAVs of the evaluation stage shown as players, in this order, with their labels
AUDIO_KINDS = {
    "original": "original soundtrack",
    "codec_resynthesis": "(a) codec resynthesis of the true codes (ceiling)",
    "decoded_measured_bold": "(b) decoded from measured BOLD",
    "reconstructed_predicted_bold": "(c) autoencoder reconstruction",
}


def lesion_label(stem):
    """A lesion WAV's player label: ``lesion-auditory-roi_measured_bold`` -> "(d) measured BOLD, auditory silenced"."""
    match = re.fullmatch(r"lesion-(.+)-(roi|complement)_(measured_bold|predicted_bold)", stem)
    if match is None:
        return f"(d) lesion: {stem}"
    roi, part, source = match.groups()
    silenced = f"{roi} silenced" if part == "roi" else f"all but {roi} silenced"
    return f"(d) {source.replace('_', ' ').replace('bold', 'BOLD')}, {silenced}"


#: Whether a higher or a lower waveform score is better (the waveform table's column names say it).
WAVEFORM_BETTER = {"si_sdr_db": "higher", "stoi": "higher", "log_mel_distance": "lower", "mrstft_distance": "lower"}


def waveform_table(path):
    if not Path(path).exists():
        return None
    table = pd.read_csv(path, sep="\t")
    return table.rename(columns={c: f"{c} ({better} is better)" for c, better in WAVEFORM_BETTER.items()})


def audio_players(wave_dir, out_html):
    """Copy the evaluation WAVs beside the page as 16-bit PCM; return players, spectrogram inputs (the references
    and decodings; the lesions) and the rate."""
    if not wave_dir or not Path(wave_dir).exists():
        return [], {}, {}, None
    folder = out_html.parent / f"{out_html.stem}{REPORT_AUDIO_SUFFIX}"
    players, waves, lesion_waves, rate = [], {}, {}, None
    lesions = {p.stem: lesion_label(p.stem) for p in sorted((Path(wave_dir) / "excerpt").glob("lesion-*.wav"))}
    for name, label in {**AUDIO_KINDS, **lesions}.items():
        source = next((p for p in (Path(wave_dir) / "excerpt" / f"{name}.wav", Path(wave_dir) / f"{name}.wav")
                       if p.exists()), None)
        if source is None:
            continue
        rate, wave = wavfile.read(source)
        pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16) if wave.dtype.kind == "f" else wave
        buffer = io.BytesIO()
        wavfile.write(buffer, rate, pcm)
        write_bytes(folder / f"{name}.wav", buffer.getvalue())
        players.append({"label": label, "src": f"{folder.name}/{name}.wav"})
        (waves if name in AUDIO_KINDS else lesion_waves)[label] = pcm.astype(np.float32) / 32767
    return players, waves, lesion_waves, rate
