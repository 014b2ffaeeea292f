from __future__ import annotations

from dbrewind._graph import children_first, strongly_connected
from dbrewind.dialects import ForeignKey, SchemaInfo, Table


def _position(order: list[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(order)}


def test_chain_orders_children_before_parents() -> None:
    edges = [("order_line", "order"), ("order", "customer"), ("customer", "country")]
    order = children_first(["country", "customer", "order", "order_line"], edges)
    pos = _position(order)
    for child, parent in edges:
        assert pos[child] < pos[parent]


def test_cycle_members_stay_together_and_dependents_come_first() -> None:
    edges = [("a", "b"), ("b", "a"), ("child", "a"), ("b", "root")]
    order = children_first(["a", "b", "child", "root"], edges)
    pos = _position(order)
    assert abs(pos["a"] - pos["b"]) == 1
    assert pos["child"] < min(pos["a"], pos["b"])
    assert pos["root"] > max(pos["a"], pos["b"])


def test_self_reference_is_its_own_component() -> None:
    assert strongly_connected(["tree"], [("tree", "tree")]) == [["tree"]]


def test_long_chain_needs_no_recursion() -> None:
    names = [f"t{i:05d}" for i in range(5000)]
    edges = [(names[i + 1], names[i]) for i in range(len(names) - 1)]
    assert children_first(names, edges) == list(reversed(names))


def test_schema_info_insert_order_is_parents_first_for_a_subset() -> None:
    tables = {k: Table(key=k, name=k) for k in ("country", "customer", "order")}
    info = SchemaInfo(
        tables=tables,
        foreign_keys=(ForeignKey("customer", "country"), ForeignKey("order", "customer")),
    )
    assert info.insert_order(["order", "country"]) == ["country", "order"]
    assert info.delete_order() == ["order", "customer", "country"]
    assert info.referencing("customer") == {"order"}
