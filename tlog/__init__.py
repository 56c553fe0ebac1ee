"""tlog: an RFC 6962 transparency log with the Rekor v1 API, a Fulcio-compatible CA,
and C2SP checkpoints, tiles and witnessing.

Stable public modules: ``tlog.merkle`` (hashing, proofs, compact ranges),
``tlog.note`` and ``tlog.checkpoint`` (C2SP signed notes and checkpoints) and
``tlog.errors``. Everything else is the server and may change.
"""

__version__ = "0.1.0"
