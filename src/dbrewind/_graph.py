"""Ordering tables by their foreign keys, cycles included."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["children_first", "strongly_connected"]


def strongly_connected(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit).

    Components come out in reverse topological order of the condensation:
    a component is emitted only after every component it points to.
    """
    graph: dict[str, list[str]] = {n: [] for n in nodes}
    for src, dst in edges:
        if src in graph and dst in graph:
            graph[src].append(dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, pos = work.pop()
            if pos == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            if pos < len(targets):
                work.append((node, pos + 1))
                nxt = targets[pos]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


def children_first(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """Order ``nodes`` so that for each edge ``(child, parent)`` the child comes first.

    Members of a cycle stay adjacent, sorted by name.
    """
    # Tarjan emits a component after all components it points to (its parents);
    # reversing gives children before parents.
    components = strongly_connected(nodes, edges)
    return [node for component in reversed(components) for node in component]
