"""A minimal Django project that runs Django's MySQL backend on resilient_dbapi (or plain
PyMySQL) against a real MariaDB; driven by ``tests/test_django.py`` through ``run.py``."""
