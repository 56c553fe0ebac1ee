"""A read-only web explorer for the entry log and the certificate log.

Server-rendered HTML under ``/explorer`` that works without JavaScript; the
only script, ``static/verify.js``, re-checks an entry's inclusion proof and
the checkpoint signatures in the browser with WebCrypto. See
:mod:`tlog.explorer.views` for the routes.
"""

from tlog.explorer.views import bp

__all__ = ["bp"]
