"""Integrations with frameworks that open connections themselves."""
