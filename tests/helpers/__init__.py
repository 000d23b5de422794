"""Helpers shared by the tests: a tiny model and run builder, the every-shape background runs."""
