"""Signer identities from certificate SANs, as search keys.

Fulcio puts the OIDC identity in the SubjectAlternativeName: an ``rfc822Name``
for e-mail identities, a ``uniformResourceIdentifier`` for workload identities
(e.g. a GitHub Actions workflow URL). Rekor indexes both so ``rekor-cli search
--email`` works; we do the same with ``email:`` and ``uri:`` prefixes so the
namespaces cannot collide with digests.
"""

from __future__ import annotations

from cryptography import x509

from tlog.errors import BadRequest

#: A SAN value longer than this is not indexed (the body limit bounds the
#: certificate anyway; this just keeps absurd keys out of the index).
MAX_IDENTITY_CHARS = 1024


def certificate_search_keys(certificate: x509.Certificate, path: str) -> list[str]:
    """Return ``email:<lowercased>`` and ``uri:<uri>`` keys for the SAN entries.

    A certificate without a SAN extension yields no keys. Extensions that
    cannot be parsed (cryptography parses them lazily) are a validation error:
    no sigstore client could verify such a certificate either.
    """
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    except Exception:  # ValueError, DuplicateExtension, UnsupportedGeneralNameType, ...
        raise BadRequest(f"{path}: certificate extensions cannot be parsed") from None
    san = extension.value
    keys = [
        "email:" + address.lower()
        for address in san.get_values_for_type(x509.RFC822Name)
        if 0 < len(address) <= MAX_IDENTITY_CHARS
    ]
    keys.extend(
        "uri:" + uri
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
        if 0 < len(uri) <= MAX_IDENTITY_CHARS
    )
    return keys
