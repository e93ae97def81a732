"""Persistence adapters: SQLAlchemy 2 Core tables, engines and the economy's repository."""
