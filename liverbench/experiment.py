"""The experiment a Snakemake command line runs: `python -m liverbench.experiment [ARGS...]`.

`./run report ARGS` writes `results/<experiment>/report.html`, so it needs the experiment the
workflow will use for the same ARGS. This resolves it the way Snakemake and the Snakefile do:
the repository's config.yaml, then each `--configfile` merged over it in order, then the
`--config KEY=VALUE` overrides (values parsed by Snakemake's own parser), then
`liverbench.config.resolve` (the chosen scale's block; the whole config is validated). Every
other argument is Snakemake's and is ignored. Prints the name; bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from liverbench.cli import BAD_INPUT, fail
from liverbench.config import deep_merge, read_yaml, resolve

PROG = "python -m liverbench.experiment"
# The Snakefile's `configfile:` (the repository root's config.yaml).
WORKFLOW_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def build_parser() -> argparse.ArgumentParser:
    """Snakemake's own spellings of the config options (same nargs: a repeat replaces)."""
    parser = argparse.ArgumentParser(prog=PROG, add_help=False)  # --help is Snakemake's
    parser.add_argument("--configfile", "--configfiles", nargs="+", type=Path, default=[])
    parser.add_argument("--config", "-C", nargs="*", default=[])
    parser.add_argument("--replace-workflow-config", action="store_true")
    return parser


def command_line_config(entries: Sequence[str]) -> dict:
    """`--config` entries as Snakemake reads them (int, float, bool, YAML, else string)."""
    from snakemake.cli import parse_config  # Snakemake's parser, so values match exactly

    return parse_config(list(entries))


def raw_config(args: argparse.Namespace, workflow_config: Path = WORKFLOW_CONFIG) -> dict:
    """The config the Snakefile sees before `resolve`: config.yaml, config files, --config."""
    config = {} if args.replace_workflow_config else read_yaml(workflow_config)
    for path in args.configfile:
        config = deep_merge(config, read_yaml(path))
    return deep_merge(config, command_line_config(args.config or []))


def experiment(argv: Sequence[str], workflow_config: Path = WORKFLOW_CONFIG) -> str:
    """The experiment name a Snakemake run with these arguments writes under results/."""
    args, _snakemake_only = build_parser().parse_known_args(list(argv))
    return str(resolve(raw_config(args, workflow_config))["experiment"])


def main(argv: Sequence[str] | None = None) -> int:
    try:
        print(experiment(sys.argv[1:] if argv is None else argv))
    except BAD_INPUT as error:
        return fail(PROG, error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
