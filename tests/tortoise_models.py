"""The model of the Tortoise-ORM tests."""

from tortoise import fields, models


class Item(models.Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=50)

    class Meta:
        table = "item"
