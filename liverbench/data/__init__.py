"""Image IO, the phantom cohort, adapters for real data, preprocessing, splits and pairs."""
