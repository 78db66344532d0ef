"""aiomysql's own test suite (from its PyPI sdist), run through ``resilient_dbapi.aiomysql``.

``python -m tests.aiomysql_suite`` runs it both ways side by side and prints what differs;
``tests/test_aiomysql_suite.py`` holds the result to ``expected.toml``."""
