"""The whole DAG on a small demo: raw stimuli to reports; a rerun does nothing; the pages render in a browser."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.workflow.conftest import demo_config_under, merge

SMALL = {
    "demo": {"duration_s": 120.0},
    "fmri": {"run_n_trs": [40, 40], "subjects": ["sub-01", "sub-02", "sub-03"]},
    "split": {"fractions": [0.6, 0.2, 0.2], "gap_s": 12.0, "min_gap_s": 12.0},
    "codec": {"fit_max_frames": 4096},
    "train": {"max_epochs": 3, "window_trs": 16, "stride_trs": 8},
    "evaluate": {"n_permutations": 50, "n_bootstrap": 50, "excerpt_s": 6.0, "n_examples": 4},
}


def _snakemake(config_path, *flags):
    # the rules call the `giblet` console script installed beside this interpreter
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config_path), *flags],
                          cwd=REPO_ROOT, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    path, cfg = demo_config_under(root, SMALL)
    result = _snakemake(path)
    assert result.returncode == 0, result.stderr[-5000:]
    return root, path, cfg


@pytest.mark.slow
def test_demo_dag_builds_every_report(small_demo):
    root, _, cfg = small_demo
    reports = root / "reports" / "demo"
    assert sorted(p.name for p in reports.glob("*.html")) == ["index.html", "sub-01.html", "sub-02.html",
                                                               "sub-03.html"]
    page = (reports / "sub-01.html").read_text()
    assert "codec: untrained" in page and "<audio" in page
    assert '<h2 id="pictures">Pictures</h2>' in page  # regression: the report looked for thumbnail keys evaluate never wrote
    for subject in cfg["fmri"]["subjects"]:
        assert (root / "data" / "demo" / "benchmarks" / "evaluate" / f"{subject}.tsv").exists()


@pytest.mark.slow
def test_demo_dag_rerun_with_nothing_changed_does_nothing(small_demo):
    _, path, _ = small_demo
    result = _snakemake(path, "-n")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_demo_dag_every_written_file_is_a_declared_rule_output(small_demo):
    """Each rule's declared outputs against what its stage wrote: nothing written undeclared (a stage's extra file
    would be neither cleaned, checked for freshness nor rebuilt), nothing declared missing. The one exception is
    the training checkpoint: Snakemake deletes a failed job's outputs, and the checkpoint must outlive a failed
    run to resume it."""
    root, path, _ = small_demo
    result = _snakemake(path, "--summary")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("\t") for line in result.stdout.splitlines()[1:] if "\t" in line]
    declared = {Path(row[0]).resolve(): row for row in rows}
    declared |= {Path(log).resolve(): None for row in rows for log in row[3].split(", ") if log != "-"}
    ours = [p for p in declared if root in p.parents]
    assert len(ours) > 50 and all(declared[p] is None or declared[p][4] == "ok" for p in ours)
    written = [p.resolve() for folder in (root / "data", root / "reports") for p in folder.rglob("*")
               if p.is_file() and "benchmarks" not in p.parts]
    undeclared = [str(p.relative_to(root)) for p in written
                  if p not in declared and not any(parent in declared for parent in p.parents)]
    assert undeclared == ["data/demo/derived/model/checkpoint.pt"]


def _planned_after(small_demo, name, overrides):
    """Rules a dry run plans once ``overrides`` change the finished demo's config."""
    root, _, cfg = small_demo
    changed = root / f"{name}.yaml"
    changed.write_text(yaml.safe_dump(merge(cfg, overrides)))
    result = _snakemake(changed, "-n")
    return {line.split()[0] for line in result.stdout.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}


@pytest.mark.slow
def test_demo_dag_model_change_reruns_train_and_below_only(small_demo):
    planned = _planned_after(small_demo, "changed", {"model": {"hidden": 32}})
    assert {"train", "evaluate", "report", "group_report"} <= planned
    assert not {"demo_data", "extract_audio", "extract_video", "extract_text", "align", "prepare_fmri"} & planned


@pytest.mark.slow
def test_demo_dag_scoring_change_does_not_rerun_waveform_decoding(small_demo):
    """Regression: decode_audio hashed the whole evaluate section, so n_bootstrap reran every WAV."""
    planned = _planned_after(small_demo, "bootstrap", {"evaluate": {"n_bootstrap": 60}})
    assert {"evaluate", "group_summary"} <= planned and not {"decode_audio", "audio_references", "train"} & planned


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Sections (heading ids) every page of the demo shows, each with content.
SUBJECT_SECTIONS = ["summary", "data", "ceiling", "encoding", "decoding", "sound", "pictures", "text", "lesions",
                    "configuration"]
GROUP_SECTIONS = ["subjects", "encoding", "group-tests", "isc", "lesion-contrasts", "numbers"]
#: Where the test leaves screenshots for a reviewer: the repository's reports folder (git-ignored).
SCREENSHOTS = REPO_ROOT / "reports" / "demo" / "screenshots"
_SECTIONS_JS = """[...document.querySelectorAll('h2[id]')].map(h => {
    let n = 0, e = h.nextElementSibling;
    for (; e && e.tagName !== 'H2'; e = e.nextElementSibling)
        if (e.matches('table, figure, div, audio, ul, pre')
            || (e.tagName === 'P' && e.textContent.trim() && e.textContent.trim() !== 'not available')) n++;
    return [h.id, n];
})"""
_TABLES_JS = """[...document.querySelectorAll('div.table-scroll')].map(d => {
    const note = d.previousElementSibling;
    return [note && note.classList.contains('table-rows') ? note.textContent : '',
            d.querySelectorAll('tbody tr').length];
})"""
_AUDIO_JS = """Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(done => {
    if (a.readyState >= 1) return done(a.duration);
    a.addEventListener('loadedmetadata', () => done(a.duration));
    a.addEventListener('error', () => done(-1));
    a.load();
})))"""


def _check_page(page, path, sections):
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(path.as_uri(), wait_until="load")
    found = dict(page.evaluate(_SECTIONS_JS))
    assert all(found.get(section, 0) > 0 for section in sections), (path.name, found)
    for note, n_rows in page.evaluate(_TABLES_JS):  # every table says how many rows it holds, and holds them all
        assert note == f"{n_rows} row{'s' if n_rows != 1 else ''}", (path.name, note, n_rows)
    sizes = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert sizes and all(done and width >= 200 and height >= 100 for done, width, height in sizes), (path.name, sizes)
    durations = page.evaluate(_AUDIO_JS)
    assert all(d > 0 for d in durations), (path.name, durations)
    assert errors == [], (path.name, errors)
    return durations


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_every_report_page_shows_every_section_in_headless_chromium(small_demo):
    """Every page of the demo: each section present and non-empty, no table cut without saying so, every image of
    a real size, every audio element loads, no console error. Screenshots for a reviewer in ``SCREENSHOTS``."""
    playwright = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (test extra)")
    root, _, cfg = small_demo
    reports = root / "reports" / "demo"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        for subject in cfg["fmri"]["subjects"]:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            durations = _check_page(page, reports / f"{subject}.html", SUBJECT_SECTIONS)
            assert len(durations) >= 3, durations
            if subject == cfg["fmri"]["subjects"][0]:
                page.locator("section.summary").screenshot(path=str(SCREENSHOTS / "summary_box.png"))
                page.locator("figure:has(img[alt='encoding map'])").first.screenshot(
                    path=str(SCREENSHOTS / "brain_map.png"))
            page.close()
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        _check_page(page, reports / "index.html", GROUP_SECTIONS)
        page.screenshot(path=str(SCREENSHOTS / "group_page.png"), full_page=True)
        browser.close()
    for name in ("summary_box.png", "brain_map.png", "group_page.png"):
        assert (SCREENSHOTS / name).stat().st_size > 10_000, name


@pytest.mark.slow
def test_demo_dag_interrupted_run_recovers_with_the_same_command(small_demo):
    """Regression: after Ctrl-C the same command stopped with IncompleteFilesException."""
    root, _, cfg = small_demo
    longer = root / "longer.yaml"  # another run: train works for a while before it is interrupted
    longer.write_text(yaml.safe_dump(merge(cfg, {"train": {"max_epochs": 20, "patience": 20}})))
    train_log = root / "data" / "demo" / "logs" / "train.log"
    train_log.unlink()  # the first build's log says "epoch 2:" too
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(longer), "--until", "train"]
    # Ctrl-C must reach snakemake even when pytest itself was started in the background (which ignores SIGINT)
    run = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while "epoch 2:" not in (train_log.read_text() if train_log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole process group
    assert run.wait(timeout=120) != 0
    model = root / "data" / "demo" / "derived" / "model"
    assert not (model / "autoencoder.pt").exists() and (model / "checkpoint.pt").exists()
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in train_log.read_text() and not list(model.glob(".*partial*"))
