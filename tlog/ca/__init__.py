"""The Fulcio-compatible signing CA: which OIDC issuers are trusted
(:mod:`tlog.ca.issuers`), how their ID tokens are verified
(:mod:`tlog.ca.oidc`), how verified claims become a certificate identity with
Fulcio's extensions (:mod:`tlog.ca.identity`), and an opt-in development OIDC
issuer for local testing (:mod:`tlog.ca.devoidc`).
"""
