from sqlalchemy import text
from sqlalchemy.engine import Engine


def test_each_backend_answers(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
