#!/usr/bin/env bash
# Installs this project into a conda environment of envs/, editable and without dependencies
# (the environment pins those), so that a rule's `python -m liverbench|regsegnet|baselines`
# imports this checkout's code. Snakemake runs it once, right after it creates the
# environment, inside it ($CONDA_PREFIX): every `envs/NAME.post-deploy.sh` (Snakemake's name
# for the post-deployment script of `envs/NAME.yaml`) is a link to this file.
#
# The checkout is Snakemake's working directory (run it from the repository root), or
# $REGSEGBENCH_ROOT if set. The environment then imports that checkout, wherever it runs.
set -euo pipefail
root=${REGSEGBENCH_ROOT:-$PWD}
if ! grep -qs '^name = "regsegbench"$' "$root/pyproject.toml"; then
  echo "envs/install-project.sh: $root is not the regsegbench repository; run Snakemake" \
       "from the repository root or set REGSEGBENCH_ROOT to it" >&2
  exit 1
fi
"$CONDA_PREFIX/bin/python" -m pip install --disable-pip-version-check --no-deps -e "$root"
