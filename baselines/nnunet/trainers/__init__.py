"""nnU-Net trainer classes of this project; nnU-Net finds them through `nnUNet_extTrainer`."""
