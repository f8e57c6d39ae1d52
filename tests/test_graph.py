"""Graph text for Graphviz and Mermaid."""

from __future__ import annotations

from a_la_mode.review.graph import to_dot, to_mermaid

from .conftest import GOLDEN, collage_dag


def test_dot_has_every_task_with_its_short_id_and_every_edge() -> None:
    text = to_dot(collage_dag().compile())
    for name, output in GOLDEN.items():
        assert f'"{name}" [label="{name}\\n{output[:12]}"];' in text
    assert '"download_images" -> "blur";' in text
    assert text.count("->") == 4


def test_mermaid_uses_safe_node_ids_for_dotted_and_dashed_names() -> None:
    from a_la_mode import Dag

    dag = Dag()
    with dag.group("in-gest") as group:
        group.task("fetch.v2") >> group.task("clean")
    text = to_mermaid(dag.compile())
    assert 't0["in-gest.fetch.v2<br/>' in text
    assert "t0 --> t1" in text
