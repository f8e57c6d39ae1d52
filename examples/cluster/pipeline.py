"""The cluster example (docs/cluster.md): the same plan runs on this machine, on a Dask
cluster, or on SSH hosts.

    alamode run examples/cluster/pipeline.py
    alamode run examples/cluster/pipeline.py --engine dask --scheduler tcp://127.0.0.1:8786 \
        --store s3://bucket/prefix
"""

from tasks import count_words

from a_la_mode import Dag

dag = Dag({"owner": "docs"})
fetch = dag.task(
    "fetch",
    {
        "command": 'printf "the cat sat\\n" > "$ALAMODE_OUTPUT/a.txt"; '
        'printf "the dog sat on the cat\\n" > "$ALAMODE_OUTPUT/b.txt"'
    },
)
count = dag.function(count_words, name="count", deps=[fetch], args={"top": 3})
dag.task(
    "report",
    {"command": ["sh", "report.sh"], "files": ["report.sh"]},
    deps=[count],
)
