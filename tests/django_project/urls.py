"""URLs of the test project."""

from __future__ import annotations

from django.urls import path

from .items import views

urlpatterns = [
    path("items/", views.item_list),
    path("items/bulk/", views.item_bulk),
    path("items/pair/", views.item_pair),
    path("items/move/", views.item_move),
    path("items/<int:pk>/", views.item_update),
    path("items/<int:pk>/delete/", views.item_delete),
]
