"""The module graph, lazy and TYPE_CHECKING imports included: no import circle anywhere, and no domain module
that imports a view of itself (everything that shows something lives in convscope.presentation)."""

from __future__ import annotations

import grimp
import pytest

DOMAIN = ("convscope.data", "convscope.models", "convscope.training", "convscope.evaluation", "convscope.runs")


@pytest.fixture(scope="module")
def graph():
    # the file-level graph import-linter checks, with every import a module makes, wherever it stands in the file
    return grimp.build_graph("convscope", exclude_type_checking_imports=False, cache_dir=None)


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_circles_finds_a_circle_and_only_that():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert circles(edges) == [["a", "b", "c"]]


def test_no_module_imports_itself_back(graph):
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert circles(edges) == []


def test_no_domain_module_imports_a_view(graph):
    views = {m for m in graph.modules if m.startswith("convscope.presentation")}
    offenders = [
        (m, sorted(graph.find_modules_directly_imported_by(m) & views))
        for m in sorted(graph.modules)
        if m.startswith(DOMAIN) and graph.find_modules_directly_imported_by(m) & views
    ]
    assert offenders == []
