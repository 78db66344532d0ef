"""Settings for the test project; every database setting comes from the environment.

``DJANGO_MYSQLDB`` picks what ``import MySQLdb`` gives Django's MySQL backend:
``resilient`` (resilient_dbapi's drop-in) or ``plain`` (PyMySQL's own); or the ENGINE:
``engine``/``mysqlclient`` (resilient_dbapi's or Django's, on mysqlclient), ``pg-engine``/``pg``
(resilient_dbapi's or Django's PostgreSQL backend). It must be decided
here, before Django imports its backend, so one process can only ever run one of them.
"""

from __future__ import annotations

import os

MYSQLDB = os.environ.get("DJANGO_MYSQLDB", "resilient")
ENGINE = "django.db.backends.mysql"
if MYSQLDB == "resilient":
    import resilient_dbapi.pymysql

    resilient_dbapi.pymysql.install_as_MySQLdb()
elif MYSQLDB == "plain":
    import pymysql

    pymysql.install_as_MySQLdb()
elif MYSQLDB == "engine":  # resilient_dbapi's ENGINE, on mysqlclient (Django's default)
    ENGINE = "resilient_dbapi.contrib.django.mysql"
elif MYSQLDB == "pg-engine":  # resilient_dbapi's ENGINE for PostgreSQL, on psycopg 3
    ENGINE = "resilient_dbapi.contrib.django.postgresql"
elif MYSQLDB == "pg":  # Django's own PostgreSQL backend
    ENGINE = "django.db.backends.postgresql"
elif MYSQLDB != "mysqlclient":  # Django's own backend on mysqlclient
    raise ValueError(
        "DJANGO_MYSQLDB must be 'resilient', 'plain', 'engine', 'mysqlclient', 'pg-engine' "
        f"or 'pg', not {MYSQLDB!r}"
    )
POSTGRES = MYSQLDB.startswith("pg")

SECRET_KEY = "not-a-secret: a throwaway test project"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "tests.django_project.urls"
INSTALLED_APPS = ["tests.django_project.items"]
# No CSRF or session middleware: the scenarios post forms without cookies.
MIDDLEWARE: list[str] = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_options: dict[str, str] = {"policies": "default"} if MYSQLDB.endswith("engine") else {}
if os.environ.get("DJANGO_DB_INIT_COMMAND"):
    # Run by the driver on every physical connection, replacements included.
    _options["init_command"] = os.environ["DJANGO_DB_INIT_COMMAND"]

DATABASES = {
    "default": {
        "ENGINE": ENGINE,
        "HOST": os.environ.get("DJANGO_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("DJANGO_DB_PORT", "3306"),
        "USER": os.environ.get("DJANGO_DB_USER", "root"),
        "PASSWORD": os.environ.get("DJANGO_DB_PASSWORD", ""),
        "NAME": os.environ.get("DJANGO_DB_NAME", "django_test"),
        # Persistent connections: one connection serves many requests, the case in which
        # a connection the server closed between requests breaks plain PyMySQL.
        "CONN_MAX_AGE": int(os.environ.get("DJANGO_CONN_MAX_AGE", "600")),
        "OPTIONS": _options,
    }
}

# Tracebacks of 500s and resilient_dbapi's reconnect lines go to stderr, for diagnosis.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "resilient_dbapi": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
