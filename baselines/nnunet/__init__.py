"""nnU-Net v2 for the benchmark: the cohorts as nnU-Net datasets, MSD pretraining and
fine-tuning by nnU-Net's documented route, a short-schedule trainer, and prediction in the
original geometry. The `nnunet_ncect` method, and phase 1 of `elastix_cnn`.

Run `python -m baselines.nnunet --help`. Modules that import nnunetv2 (planning, train,
predict) must be imported after `environment.configure`, which sets nnU-Net's folders and
worker counts; the CLI does that.
"""
