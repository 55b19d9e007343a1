"""liverbench: the shared core of regsegbench (data, preprocessing, evaluation)."""
