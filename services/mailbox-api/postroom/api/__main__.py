"""``python -m postroom.api``: serve the API and web mail with uvicorn."""

from __future__ import annotations

import uvicorn

from postroom.api.app import create_app
from postroom.config import get_settings
from postroom.log import configure_logging
from postroom.throttle import auth_throttle


def main() -> None:
    settings = get_settings()
    configure_logging(settings, "mailbox-api")
    app = create_app(settings, throttle=auth_throttle(settings))
    uvicorn.run(
        app,
        host=settings.bind_address,
        port=settings.http_port,
        log_config=None,
        # X-Forwarded-For and -Proto are believed only from POSTROOM_TRUSTED_PROXIES (the
        # same load balancers whose PROXY protocol the mail ports take); from anyone else the
        # client is the peer, so nobody can claim an address to dodge the login throttle.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(str(n) for n in settings.trusted_proxies) or "",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
