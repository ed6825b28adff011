import ast
import re
from pathlib import Path

import numpy as np
import pytest

import giblet.audio
from giblet.audio import CodeStream
from giblet.audio.codes import tr_frame_spans
from giblet.audio.views import code_histograms, pooled_embeddings, quantized_latent

N_CODEBOOKS, CODEBOOK_SIZE, DIM = 4, 32, 6


@pytest.fixture
def stream(rng):
    return CodeStream(rng.integers(0, CODEBOOK_SIZE, (N_CODEBOOKS, 450)), 75.0, "test", 3.0, "untrained — test", 0)


@pytest.fixture
def vectors(rng):
    return rng.standard_normal((N_CODEBOOKS, CODEBOOK_SIZE, DIM)).astype(np.float32)


def test_quantized_latent_is_sum_of_code_vectors(stream, vectors):
    table = quantized_latent(stream, vectors)
    frame = 100
    expected = sum(vectors[q, stream.codes[q, frame]] for q in range(N_CODEBOOKS))
    np.testing.assert_allclose(table.values[frame], expected, rtol=1e-6)
    assert table.values.shape == (450, DIM)
    np.testing.assert_allclose(table.times_s[[0, 1, 112]], [0.0, 1 / 75, 112 / 75])
    assert table.meta["codec_status"] == "untrained — test"
    assert table.meta["frame_rate_hz"] == 75.0


def test_pooled_embeddings_are_tr_means_of_code_vectors(stream, vectors):
    table = pooled_embeddings(stream, vectors, 1.5, 4)
    assert table.values.shape == (4, (N_CODEBOOKS + 1) * DIM)
    np.testing.assert_allclose(table.times_s, [0.0, 1.5, 3.0, 4.5])
    for tr, (start, stop) in enumerate(tr_frame_spans(4, 1.5, 75.0)):
        per_codebook = np.stack([vectors[q, stream.codes[q, start:stop]].mean(axis=0) for q in range(N_CODEBOOKS)])
        expected = np.concatenate([per_codebook.ravel(), per_codebook.sum(axis=0)])
        np.testing.assert_allclose(table.values[tr], expected, rtol=1e-5, atol=1e-6)
    assert table.names[DIM] == "cb1_000" and table.names[-1] == f"sum_{DIM - 1:03d}"


def test_code_histograms_count_codes_per_tr(stream):
    table = code_histograms(stream, CODEBOOK_SIZE, 1.5, 4, runs=np.array([0, 0, 1, 1]))
    assert table.kind == "labels"
    values = table.values.reshape(4, N_CODEBOOKS, CODEBOOK_SIZE)
    np.testing.assert_allclose(values.sum(axis=2), 1.0, rtol=1e-6)
    start, stop = tr_frame_spans(4, 1.5, 75.0)[1]  # 113 frames
    code = stream.codes[2, start]
    assert values[1, 2, code] == pytest.approx(np.sum(stream.codes[2, start:stop] == code) / 113)
    np.testing.assert_array_equal(table.runs, [0, 0, 1, 1])


def test_views_are_equivariant_to_code_relabelling(stream, vectors, rng):
    """Codes are categories: renaming them (with their vectors) changes nothing.

    Any view that treated indices as numbers (mean, interpolation, rounding) would fail this.
    """
    permutation = np.stack([rng.permutation(CODEBOOK_SIZE) for _ in range(N_CODEBOOKS)])
    relabelled = CodeStream(np.take_along_axis(permutation, stream.codes.astype(int), axis=1), 75.0)
    moved = np.empty_like(vectors)
    for q in range(N_CODEBOOKS):
        moved[q, permutation[q]] = vectors[q]
    np.testing.assert_allclose(quantized_latent(relabelled, moved).values, quantized_latent(stream, vectors).values)
    np.testing.assert_allclose(pooled_embeddings(relabelled, moved, 1.5, 4).values,
                               pooled_embeddings(stream, vectors, 1.5, 4).values, rtol=1e-5)
    hist = code_histograms(stream, CODEBOOK_SIZE, 1.5, 4).values.reshape(4, N_CODEBOOKS, CODEBOOK_SIZE)
    hist_relabelled = code_histograms(relabelled, CODEBOOK_SIZE, 1.5, 4).values.reshape(4, N_CODEBOOKS, CODEBOOK_SIZE)
    for q in range(N_CODEBOOKS):
        np.testing.assert_array_equal(hist_relabelled[:, q, permutation[q]], hist[:, q])


def test_views_reject_foreign_codebooks(stream, vectors):
    with pytest.raises(ValueError, match="use the vectors of the codec that made the codes"):
        quantized_latent(stream, vectors[:, :8])
    with pytest.raises(ValueError, match="pass the codebook size of the codec"):
        code_histograms(stream, 8, 1.5, 4)


def test_feature_tables_save_and_load(tmp_path, stream, vectors):
    from giblet.features import FeatureTable

    table = pooled_embeddings(stream, vectors, 1.5, 4)
    loaded = FeatureTable.load(table.save(tmp_path / "pooled.npz"))
    np.testing.assert_array_equal(loaded.values, table.values)
    assert loaded.meta == table.meta


# --- no code path treats code indices as numbers -------------------------------------------------

_FORBIDDEN = {"interp", "convolve", "fftconvolve", "oaconvolve", "lfilter", "filtfilt", "round", "rint", "around",
              "floor", "ceil", "mean", "average", "median", "nanmean", "resample", "resample_poly", "zoom",
              "interpolate", "avg_pool1d", "conv1d"}
_CODE_NAME = re.compile(r"(^|_)codes?($|_)")


def _code_arithmetic(source):
    """Calls of a forbidden function with a ``code``/``codes`` variable among their operands."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in _FORBIDDEN:
            continue
        operands = [*node.args, *(k.value for k in node.keywords)]
        if isinstance(node.func, ast.Attribute):
            operands.append(node.func.value)
        names = {n.id for op in operands for n in ast.walk(op) if isinstance(n, ast.Name)}
        names |= {n.attr for op in operands for n in ast.walk(op) if isinstance(n, ast.Attribute)}
        if any(_CODE_NAME.search(n) for n in names):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_code_arithmetic_check_catches_violations():
    bad = "x = np.mean(codes, axis=1)\ny = stream.codes.mean()\nz = np.interp(t, times, tr_codes)\n"
    good = "x = np.mean(latents)\ny = codes_by_tr(stream, 1.5, 4)\nz = np.ceil(n_frames / 2)\n"
    assert len(_code_arithmetic(bad)) == 3
    assert _code_arithmetic(good) == []


def test_no_code_path_interpolates_convolves_rounds_or_averages_codes():
    package = Path(giblet.audio.__file__).parent
    found = {path.name: hits for path in sorted(package.glob("*.py")) if (hits := _code_arithmetic(path.read_text()))}
    assert found == {}
