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
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
