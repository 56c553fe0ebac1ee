"""``tlog verify``: the command-line front end of :mod:`tlog.verify`.

Exit status: 0 when every check passed, 1 when a check failed, 2 for usage
errors (missing or contradictory options, unreadable trust config or policy).
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from pathlib import Path

import click

__all__ = ["verify_command"]

_file = click.Path(exists=True, dir_okay=False, path_type=Path)


def _leaf_hash(value: str) -> bytes:
    text = value.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise click.BadParameter("want a 32-byte hash in hex or base64", param_hint="--leaf-hash")
    return raw


@click.command("verify")
@click.argument("bundle_or_proof", type=_file, metavar="BUNDLE_OR_PROOF")
@click.argument("artifact", type=_file, required=False)
@click.option("--trust-config", type=_file, help="ClientTrustConfig or bare TrustedRoot JSON (e.g. from `tlog trust-config`).")
@click.option("--cert-identity", help="Expected signer identity: the certificate's SAN (email or URI), exactly.")
@click.option("--cert-oidc-issuer", help="Expected OIDC issuer: certificate extension 1.3.6.1.4.1.57264.1.1, exactly.")
@click.option("--digest", help="sha256:<hex> of the artifact, instead of ARTIFACT (bundles only).")
@click.option("--leaf-hash", help="RFC 6962 leaf hash (hex or base64), instead of ARTIFACT (tlog-proof only).")
@click.option("--policy", type=_file, help="C2SP tlog-policy file: trusted log keys, witnesses and the cosignature quorum.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON report.")
def verify_command(
    bundle_or_proof: Path,
    artifact: Path | None,
    trust_config: Path | None,
    cert_identity: str | None,
    cert_oidc_issuer: str | None,
    digest: str | None,
    leaf_hash: str | None,
    policy: Path | None,
    as_json: bool,
) -> None:
    """Verify a Sigstore bundle or a C2SP tlog-proof offline.

    \b
    Sigstore bundle (v0.1-v0.3; hashedrekord or dsse, Rekor v1 or v2):
      tlog verify FILE.sigstore.json FILE --trust-config trust.json \\
          --cert-identity alice@example.com --cert-oidc-issuer https://issuer
    checks the inclusion proof, the checkpoint, the SET or RFC 3161
    timestamps, the certificate chain and SCT, the identity, the artifact
    signature and that the log entry records this very signature.

    \b
    C2SP tlog-proof (the entry's bytes as ARTIFACT, or --leaf-hash):
      tlog verify entry.tlog-proof entry.json --policy log.policy
    checks the checkpoint's log signature, the witness quorum of the
    policy, and the entry's inclusion.

    Exit status: 0 if every check passed, 1 if one failed, 2 on usage errors.
    """
    from tlog.verify.artifact import Artifact, parse_digest
    from tlog.verify.policy import PolicyError, parse_policy
    from tlog.verify.tlogproof import is_tlog_proof
    from tlog.verify.trust import TrustConfigError, load_trust_root

    data = bundle_or_proof.read_bytes()
    proof_mode = is_tlog_proof(data)

    trust = None
    if trust_config is not None:
        try:
            trust = load_trust_root(trust_config)
        except TrustConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--trust-config") from None
    parsed_policy = None
    if policy is not None:
        try:
            parsed_policy = parse_policy(policy.read_bytes())
        except PolicyError as exc:
            raise click.BadParameter(str(exc), param_hint="--policy") from None

    if proof_mode:
        from tlog.merkle import hash_leaf
        from tlog.verify.tlogproof import verify_tlog_proof

        if cert_identity or cert_oidc_issuer or digest:
            raise click.UsageError("--cert-identity, --cert-oidc-issuer and --digest apply to Sigstore bundles, not tlog-proofs")
        if (artifact is None) == (leaf_hash is None):
            raise click.UsageError("give the entry's bytes as ARTIFACT or its --leaf-hash (exactly one)")
        if trust is None and not (parsed_policy and parsed_policy.logs):
            raise click.UsageError("give --trust-config or a --policy with a log line: the log key is needed")
        if artifact is not None:
            entry = artifact.read_bytes()
            leaf, source = hash_leaf(entry), f"SHA-256(0x00 || {artifact.name}, {len(entry)} bytes)"
        else:
            assert leaf_hash is not None
            leaf, source = _leaf_hash(leaf_hash), "given with --leaf-hash"
        report = verify_tlog_proof(
            data, leaf_hash=leaf, leaf_source=source, trust=trust, policy=parsed_policy, subject=str(bundle_or_proof)
        )
    else:
        from tlog.verify.sigstore_bundle import verify_bundle

        if leaf_hash:
            raise click.UsageError("--leaf-hash applies to tlog-proofs, not Sigstore bundles")
        if trust is None:
            raise click.UsageError("--trust-config is required to verify a Sigstore bundle")
        if (artifact is None) == (digest is None):
            raise click.UsageError("give the ARTIFACT or its --digest sha256:<hex> (exactly one)")
        if (cert_identity is None) != (cert_oidc_issuer is None) or cert_identity is None:
            raise click.UsageError("--cert-identity and --cert-oidc-issuer are both required to verify a Sigstore bundle")
        if digest is not None:
            try:
                target = Artifact(digest=parse_digest(digest))
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--digest") from None
        else:
            target = Artifact(path=artifact)
        report = verify_bundle(
            data,
            trust=trust,
            artifact=target,
            identity=cert_identity,
            issuer=cert_oidc_issuer,
            policy=parsed_policy,
            subject=str(bundle_or_proof),
        )

    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(report.render(), nl=False)
    sys.exit(0 if report.ok else 1)
