"""``ENGINE = "resilient_dbapi.contrib.django.mysql"``: Django's MySQL/MariaDB backend on
resilient connections (see :mod:`.base`)."""
