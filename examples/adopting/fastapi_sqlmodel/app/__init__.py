"""A small FastAPI + SQLModel + Alembic application, as such applications are usually laid out."""
