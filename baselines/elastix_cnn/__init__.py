"""Elastix + CNN (Luu et al. 2023), phases 2-4: masked two-stage itk-elastix registration of
CECT to nCECT and the CECT liver carried to nCECT by transformix. Phase 1 (the nnU-Net liver
masks) comes from `baselines.nnunet`, through files. Run `python -m baselines.elastix_cnn --help`.
"""
