"""Demo configs that write everything under a test's own folder."""

import yaml

from tests.conftest import REPO_ROOT


def merge(base, extra):
    """A copy of ``base`` updated from ``extra``, nested dicts merged key by key (``base`` is unchanged)."""
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return merged


def demo_config_under(root, overrides=None):
    """config/demo.yaml with its data, inputs and reports moved under ``root``; returns (path, dict)."""
    cfg = merge(yaml.safe_load((REPO_ROOT / "config" / "demo.yaml").read_text()), overrides or {})
    data = root / "data" / "demo"
    cfg["data_dir"], cfg["reports_dir"] = str(root / "data"), str(root / "reports")
    cfg["stimulus"] = {**cfg["stimulus"], "movie": str(data / "stimulus" / "movie.mp4"),
                       "annotations": str(data / "stimulus" / "annotations.tsv")}
    fmri = cfg["fmri"]
    fmri["bold"] = str(data / "fmri" / "{subject}" / "{subject}_run-{run}_bold.nii.gz")
    fmri["brain_mask"] = str(data / "masks" / "brain_mask.nii.gz")
    fmri["rois"] = {name: str(data / "masks" / f"roi-{name}.nii.gz") for name in fmri["rois"]}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg
