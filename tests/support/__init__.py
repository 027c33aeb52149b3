"""Helpers shared by the test modules: builders, reference implementations, scenarios and
subprocess harnesses. No test module imports another test module; what two of them share lives
here. Nothing in this package is collected by pytest (no `test_*` modules)."""
