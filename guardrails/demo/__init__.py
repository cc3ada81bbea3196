"""What the bundled demo deployment (Larkspur) needs that configuration cannot say: the
production-log simulator. Nothing else in the package depends on it."""
