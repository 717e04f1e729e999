"""Optional protection of ``/metrics`` and detailed health: bearer token or basic auth.

Secrets come from the environment or from files (``*_FILE``), never from code or
config written to disk. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

__all__ = ["Protection"]


@dataclass(frozen=True, slots=True)
class Protection:
    """Who may read a protected endpoint. With neither field set, everyone may."""

    token: str | None = None
    basic: tuple[str, str] | None = None

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.basic is not None

    def allows(self, authorization: str | None) -> bool:
        """True if the ``Authorization`` header value grants access."""
        if not self.enabled:
            return True
        if not authorization:
            return False
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and self.token is not None:
            return hmac.compare_digest(credentials.encode(), self.token.encode())
        if scheme == "basic" and self.basic is not None:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, sep, password = decoded.partition(":")
            if not sep:
                return False
            ok_user = hmac.compare_digest(user.encode(), self.basic[0].encode())
            ok_pass = hmac.compare_digest(password.encode(), self.basic[1].encode())
            return ok_user and ok_pass
        return False

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value to send with a 401."""
        return 'Basic realm="glassbox"' if self.basic is not None else 'Bearer realm="glassbox"'
