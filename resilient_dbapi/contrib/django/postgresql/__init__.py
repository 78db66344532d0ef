"""``ENGINE = "resilient_dbapi.contrib.django.postgresql"``: Django's PostgreSQL backend
on resilient connections (see :mod:`.base`)."""
