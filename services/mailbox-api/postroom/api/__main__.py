"""``python -m postroom.api``: serve the API and web mail with uvicorn."""

from __future__ import annotations

from typing import Any

import uvicorn

from postroom.api.app import create_app
from postroom.config import Settings, get_settings
from postroom.log import configure_logging
from postroom.throttle import auth_throttle


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy settings: X-Forwarded-For and -Proto are believed only from
    POSTROOM_TRUSTED_PROXIES (the same load balancers whose PROXY protocol the mail ports
    take); from anyone else the client is the peer, so nobody can claim an address to dodge
    the login throttle."""
    trusted = ",".join(str(network) for network in settings.trusted_proxies)
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}


def main() -> None:
    settings = get_settings()
    configure_logging(settings, "mailbox-api")
    app = create_app(settings, throttle=auth_throttle(settings))
    uvicorn.run(
        app,
        host=settings.bind_address,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=5,
        **proxy_options(settings),
    )


if __name__ == "__main__":
    main()
