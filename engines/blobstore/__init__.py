"""The blob store: outputs and success markers in S3, or any fsspec filesystem, for a team.

    s3://bucket/prefix    (the extra a-la-mode[s3]; also gs://, az://, file://, memory://)
      outputs/<id>/<upload>/...   the files of one upload of an output
      success/<id>                the marker: JSON, created once with create-only semantics
      leases/<id>                 who is producing <id>, and until when (create-only)
      plans/<digest>              every plan run or pushed
      revoked/<id>/<when>         each revocation of <id>
      logs/<id>/<host>-<run>-<attempt>.log

Its parts: ``bucket.py`` (keys, retries, create-only writes), ``outputs.py`` (uploads and
markers), ``leases.py`` (lease objects), and ``store.py``, which composes them with this
machine's bookkeeping: a directory store (``$ALAMODE_CACHE``, else
``~/.cache/alamode/<hash of the URL>``) whose ledger keeps runs and attempts, whose leases
let two runners on one machine coordinate, and whose outputs are the cache of fetched and
produced outputs.
"""

from .store import BlobStore

__all__ = ["BlobStore"]
