"""A pytest plugin for aiomysql's suite: with MODE=resilient, every ``aiomysql.connect``
and ``aiomysql.create_pool`` of the tests (and of ``aiomysql.sa``) is the drop-in's."""

import os

if os.environ.get("MODE") == "resilient":
    import aiomysql

    from resilient_dbapi import aiomysql as drop_in

    # Bound at import, before the test modules' ``from aiomysql import create_pool``.
    aiomysql.connect = drop_in.connect
    aiomysql.create_pool = drop_in.create_pool
