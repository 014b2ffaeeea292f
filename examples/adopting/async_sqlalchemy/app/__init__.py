"""A small async FastAPI + SQLAlchemy 2 + Alembic application (asyncpg, aiomysql or aiosqlite)."""
