"""Django database backends (``ENGINE``) whose connections are resilient."""
