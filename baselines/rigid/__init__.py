"""The rigid lower bound: the CECT liver mask carried to nCECT by the shared pre-alignment."""
