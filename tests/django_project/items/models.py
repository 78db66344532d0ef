"""The one model."""

from __future__ import annotations

from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=64, unique=True)
    qty = models.IntegerField(default=0)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.pk, "name": self.name, "qty": self.qty}
