"""The original a-la-mode example: download images, blur and edge-enhance them, make a collage.

Written exactly in the original style; its output IDs are pinned in tests/test_encoder.py.
"""

from a_la_mode import Dag

dag = Dag({"schedule": "@daily"})
dag.task("download_images", {"image": "collage", "sha": "1qe34", "command": "python dl_images.py"})
dag.task("blur", {"image": "collage", "sha": "6f09d", "command": "python transform_images.py blur"})
dag.task(
    "edge_enhance",
    {"image": "collage", "sha": "1qe34", "command": "python transform_images.py edge_enhance"},
)
dag.task("collage", {"image": "collage", "sha": "1qe34", "command": "python collage.py"})
for task in [dag.blur, dag.edge_enhance]:
    task.add_dep(dag.download_images)
for task in [dag.blur, dag.edge_enhance]:
    dag.collage.add_dep(task)
