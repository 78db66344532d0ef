"""One model and a few JSON views: enough ORM and transactions for the scenarios."""
