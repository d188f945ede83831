"""The image's HEALTHCHECK: the web server answers its login page over loopback (exit 0), or not (exit 1).

The Host header is the first of ALLOWED_HOSTS, so an operator who allows only their own domain still gets a
200 rather than Django's 400 for an unknown host. Standard library only: it runs every 30 s.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def host() -> str:
    allowed = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    plain = [h for h in allowed if not h.startswith((".", "*"))]
    return plain[0] if plain else "127.0.0.1"


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/login/"
    request = urllib.request.Request(url, headers={"Host": host()})
    try:
        with urllib.request.urlopen(request, timeout=8) as response:  # noqa: S310 (a fixed loopback URL)
            ok = response.status == 200
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
