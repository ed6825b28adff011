"""check-inputs opens every input cheaply and names each problem before any work."""

import nibabel as nib
import numpy as np
import pytest
import yaml

from giblet.cli import main
from giblet.config import validate_config
from giblet.demo.movie import write_movie
from giblet.inputs import check_inputs, check_movie, check_writable

TR_S, RUN_N_TRS = 1.5, [6, 4]


def _bold(path, n_trs, tr_s=TR_S):
    rng = np.random.default_rng(0)
    img = nib.Nifti1Image(rng.standard_normal((3, 3, 2, n_trs)).astype(np.float32), np.eye(4))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = tr_s
    img.to_filename(path)
    return path


def _movie(path, duration_s, audio=True):
    frames = [np.full((16, 16, 3), 40 * (i % 5), np.uint8) for i in range(int(duration_s * 5))]
    sound = np.sin(np.arange(int(duration_s * 8000)) / 3).astype(np.float32) if audio else np.zeros(0, np.float32)
    return write_movie(path, frames, 5, 16, 16, sound, 8000)


@pytest.fixture
def dataset(tmp_path):
    """A valid config (2 runs of 6 + 4 TRs, one subject) with its files."""
    mask = nib.Nifti1Image(np.ones((3, 3, 2), np.uint8), np.eye(4))
    mask.to_filename(tmp_path / "brain.nii.gz")
    for run, n in enumerate(RUN_N_TRS, 1):
        _bold(tmp_path / f"sub-01_run-{run}.nii.gz", n)
    (tmp_path / "annotations.tsv").write_text("onset\toffset\tdescription\n0\t15\ta dog runs\n")
    cfg = {"dataset": "check", "data_dir": str(tmp_path / "data"), "reports_dir": str(tmp_path / "reports"),
           "modalities": ["audio", "video", "text"],
           "stimulus": {"movie": str(_movie(tmp_path / "movie.mp4", 16.0)),
                        "annotations": str(tmp_path / "annotations.tsv"), "start_offset_s": 0.0},
           "fmri": {"tr_s": TR_S, "run_n_trs": RUN_N_TRS, "subjects": ["sub-01"],
                    "bold": str(tmp_path / "{subject}_run-{run}.nii.gz"),
                    "brain_mask": str(tmp_path / "brain.nii.gz"),
                    "rois": {"all": str(tmp_path / "brain.nii.gz")}}}
    return tmp_path, validate_config(cfg)


def test_check_inputs_of_a_good_dataset_finds_nothing(dataset):
    assert check_inputs(dataset[1]) == []


def test_check_inputs_names_each_bad_file(dataset):
    root, cfg = dataset
    _bold(root / "sub-01_run-1.nii.gz", 5)  # one volume short
    _bold(root / "sub-01_run-2.nii.gz", 4, tr_s=2.0)  # header TR 2 s
    _movie(root / "movie.mp4", 8.0)  # the scan needs 15 s
    problems = check_inputs(cfg)
    assert len(problems) == 2, problems
    assert "movie.mp4: lasts 8.0 s but the scan needs the stimulus until 15.0 s" in problems[0]
    assert "sub-01_run-1.nii.gz: holds 5 TRs but the config expects 6" in problems[1]
    _bold(root / "sub-01_run-1.nii.gz", 6)
    problems = check_inputs(cfg)
    assert "sub-01_run-2.nii.gz" in problems[1] and "2 s" in problems[1] and "fmri.tr_s" in problems[1]


def test_check_inputs_finds_a_truncated_nifti(dataset):
    root, cfg = dataset
    path = root / "sub-01_run-2.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # the download stopped early
    (problem,) = check_inputs(cfg)
    assert "sub-01_run-2.nii.gz: truncated or corrupt" in problem and "re-download or re-copy" in problem


def test_check_movie_without_a_sound_track(tmp_path):
    path = tmp_path / "silent_film.mp4"
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=5)
        video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
        for i in range(20):
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")))
        container.mux(video.encode())
    check_movie(path, modalities=["video"], start_offset_s=0.0, run_n_trs=[2], tr_s=TR_S)
    with pytest.raises(ValueError, match=r"silent_film.mp4: has no audio stream; give the film with its audio "
                                         r"track, or drop 'audio' from modalities"):
        check_movie(path, modalities=["audio", "video"], start_offset_s=0.0, run_n_trs=[2], tr_s=TR_S)


def test_check_writable_names_a_folder_that_cannot_take_outputs(tmp_path):
    check_writable(tmp_path / "new" / "folder")
    assert not (tmp_path / "new").exists()  # nothing is left behind
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OSError, match=r"a_file/out: outputs cannot be written there .*choose another folder"):
        check_writable(tmp_path / "a_file" / "out")
    with pytest.raises(OSError, match="outputs cannot be written there"):
        check_writable("/proc/giblet")  # a read-only file system, even for root


def test_cli_check_inputs_lists_problems_and_exits_2(dataset, capsys):
    root, cfg = dataset
    _bold(root / "sub-01_run-1.nii.gz", 5)
    cfg["data_dir"] = str(root / "annotations.tsv" / "data")  # a file where a folder should be
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check-inputs", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "2 problems with the inputs" in err and "holds 5 TRs" in err and "outputs cannot be written" in err


def test_cli_stage_with_an_unwritable_output_stops_before_any_work(dataset, capsys):
    root, cfg = dataset
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["extract-text", "--config", str(path), "--out", "/proc/giblet/features"]) == 2
    assert "/proc/giblet/features: outputs cannot be written there" in capsys.readouterr().err
