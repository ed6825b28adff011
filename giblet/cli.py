"""The giblet command line: one subcommand per pipeline stage (each Snakemake rule calls one)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from giblet.config import ConfigError, load_config

__all__ = ["main"]

log = logging.getLogger("giblet")


def _validate_config(args):
    cfg = load_config(args.config)
    print(f"{args.config}: valid ({cfg['dataset']}, {len(cfg['fmri']['subjects'])} subjects)")


def _demo_data(args):
    from giblet.demo.generate import generate_demo

    cfg = load_config(args.config)
    if "demo" not in cfg:
        raise ConfigError(f"{args.config}: has no 'demo' section; demo-data only generates the simulated dataset")
    paths = generate_demo(cfg, args.out)
    log.info("wrote %d files under %s", len(paths), args.out)


def _add(sub, name, func, help_text):
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--config", required=True, type=Path, help="YAML config file (see config/demo.yaml)")
    parser.set_defaults(func=func)
    return parser


def build_parser():
    parser = argparse.ArgumentParser(prog="giblet", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add(sub, "validate-config", _validate_config, "check a config file against the schema")
    demo = _add(sub, "demo-data", _demo_data, "generate the simulated demo dataset (film, annotations, subjects)")
    demo.add_argument("--out", required=True, type=Path, help="output folder, e.g. data/demo")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        args.func(args)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"giblet {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
