"""The identity lower bound: the CECT liver mask carried to nCECT by scanner geometry alone."""
