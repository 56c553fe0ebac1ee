"""Offline verification of Sigstore bundles and C2SP tlog-proofs (``tlog verify``).

One module per idea:

* ``report``          - the step-by-step report (text and JSON);
* ``trust``           - the trusted root: log, CT, CA and TSA material;
* ``bundle``          - parsing Sigstore bundles v0.1-v0.3;
* ``logentry``        - inclusion proof, checkpoint and SET of a bundle's entry;
* ``body``            - the entry body records the bundle's materials (CVE-2022-36056);
* ``certificate``     - chain, SCT, leaf profile and identity of the signing certificate;
* ``timestamp``       - RFC 3161 timestamps (with the DER reader in ``der``);
* ``artifact``        - the artifact digest and its signature (hashedrekord, DSSE);
* ``signatures``      - one signature check for any key type;
* ``policy``          - C2SP tlog-policy files and witness quorums;
* ``tlogproof``       - C2SP tlog-proof files;
* ``sigstore_bundle`` - the bundle verification pipeline;
* ``command``         - the ``tlog verify`` command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlog.verify.artifact import Artifact
    from tlog.verify.policy import Policy, parse_policy
    from tlog.verify.report import Report, Status, Step
    from tlog.verify.sigstore_bundle import verify_bundle
    from tlog.verify.tlogproof import (
        format_tlog_proof,
        parse_tlog_proof,
        verify_tlog_proof,
    )
    from tlog.verify.trust import TrustRoot, load_trust_root, parse_trust_root

# Loaded on first use, so that `tlog <any command>` does not pay for them.
_EXPORTS = {
    "Artifact": "artifact",
    "Policy": "policy",
    "parse_policy": "policy",
    "Report": "report",
    "Status": "report",
    "Step": "report",
    "verify_bundle": "sigstore_bundle",
    "format_tlog_proof": "tlogproof",
    "parse_tlog_proof": "tlogproof",
    "verify_tlog_proof": "tlogproof",
    "TrustRoot": "trust",
    "load_trust_root": "trust",
    "parse_trust_root": "trust",
}

__all__ = [
    "Artifact",
    "Policy",
    "Report",
    "Status",
    "Step",
    "TrustRoot",
    "format_tlog_proof",
    "load_trust_root",
    "parse_policy",
    "parse_tlog_proof",
    "parse_trust_root",
    "verify_bundle",
    "verify_tlog_proof",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"tlog.verify.{module}"), name)
