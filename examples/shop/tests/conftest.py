"""The shop's tests get their servers and faults from resilient_dbapi's pytest plugin."""

pytest_plugins = ["resilient_dbapi.testing.pytest_plugin"]
