"""A real rspamd for tests: Debian's rspamd with a configuration of its own in a temporary
folder, its workers on free loopback ports, every DNS question sent to a given loopback
server (so it never reaches out), and a Bayes classifier in SQLite (no Redis)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.dns_server import free_ports

# Modules that would ask the network (or Redis) for their answers; the tests want none.
DISABLED_MODULES = (
    "fuzzy_check",
    "rbl",
    "asn",
    "emails",
    "url_reputation",
    "url_redirector",
    "neural",
    "ratelimit",
    "greylist",
    "replies",
    "history_redis",
    "reputation",
    "maps_stats",
    "metadata_exporter",
    "clickhouse",
    "elastic",
    "dcc",
    "external_services",
    "antivirus",
    "multimap",
    "phishing",
    "rspamd_update",
    "p0f",
    "bimi",
    # Postroom checks SPF, DKIM, DMARC and ARC itself and passes its results along.
    "spf",
    "dkim",
    "dmarc",
    "arc",
)


JUNK_MARKER = "POSTROOM-TEST-JUNK"  # scores 8: "add header" (6 <= score < 15)
LATER_MARKER = "POSTROOM-TEST-LATER"  # scores 4.5: "greylist" (4 <= score < 6)

LOCAL_RULES = f"""
local function marker(text)
  return function(task)
    local subject = task:get_subject()
    return subject ~= nil and subject:find(text, 1, true) ~= nil
  end
end
rspamd_config.POSTROOM_TEST_JUNK = {{
  callback = marker('{JUNK_MARKER}'), score = 8.0, description = 'test marker: junk'
}}
rspamd_config.POSTROOM_TEST_LATER = {{
  callback = marker('{LATER_MARKER}'), score = 4.5, description = 'test marker: try later'
}}
"""


@dataclass(frozen=True, slots=True)
class Rspamd:
    """A running rspamd: its scanner (``/checkv2``), controller (learning) and milter proxy."""

    normal_port: int
    controller_port: int
    proxy_port: int
    directory: Path

    @property
    def url(self) -> str:
        """The scanner's base URL, for ``POSTROOM_RSPAMD_URL``."""
        return f"http://127.0.0.1:{self.normal_port}"

    @property
    def controller_url(self) -> str:
        return f"http://127.0.0.1:{self.controller_port}"

    def learned(self) -> dict[str, int]:
        """How many messages the Bayes classifier learnt as spam and as ham."""
        stat = httpx.get(f"{self.controller_url}/stat", timeout=5).json()
        counts = {"spam": 0, "ham": 0}
        for statfile in stat.get("statfiles", []):
            kind = "spam" if statfile["symbol"] == "BAYES_SPAM" else "ham"
            counts[kind] += int(statfile.get("revision", 0))
        return counts


@contextmanager
def start_rspamd(
    directory: Path, *, dns: str, proxy: bool = False, enabled: tuple[str, ...] = ()
) -> Iterator[Rspamd]:
    """rspamd with its own configuration under ``directory``, resolving through ``dns``
    (``host:port``); ``proxy`` also starts the milter proxy (for Postfix); ``enabled`` keeps
    those of DISABLED_MODULES on (``dkim``, to verify what Postroom signs)."""
    binary = shutil.which("rspamd") or "/usr/bin/rspamd"
    if not Path(binary).exists():
        raise RuntimeError("rspamd is not installed (Debian package rspamd)")
    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("local.d", "override.d", "db", "run", "log"):
        (directory / sub).mkdir(exist_ok=True)
    normal, controller, proxy_port = free_ports(3)
    override = directory / "override.d"
    local = directory / "local.d"
    (override / "worker-normal.inc").write_text(
        f'bind_socket = "127.0.0.1:{normal}";\ncount = 1;\ntask_timeout = 20s;\n'
    )
    (override / "worker-controller.inc").write_text(
        f'bind_socket = "127.0.0.1:{controller}";\ncount = 1;\n'
        'secure_ip = "127.0.0.1";\npassword = "";\nenable_password = "";\n'
    )
    if proxy:
        (override / "worker-proxy.inc").write_text(
            f'bind_socket = "127.0.0.1:{proxy_port}";\ncount = 1;\nmilter = yes;\n'
            "timeout = 120s;\n"
            # The standard setup: the proxy hands each message to the scanner (normal worker).
            f'upstream "local" {{\n  default = yes;\n  hosts = "127.0.0.1:{normal}";\n}}\n'
        )
    else:
        (override / "worker-proxy.inc").write_text("enabled = false;\n")
    (override / "worker-fuzzy.inc").write_text("enabled = false;\n")
    # rspamd compiles its list of top-level domains at every start (some 40 s for the whole
    # Public Suffix List); the test domains need a handful.
    tlds = directory / "effective_tld_names.dat"
    tlds.write_text("test\ninvalid\nexample\ncom\nnet\norg\n")
    host, _, port = dns.partition(":")
    (override / "options.inc").write_text(
        f'dns {{\n  nameserver = ["{host}:{port or 53}"];\n'
        "  timeout = 1s;\n  retransmits = 1;\n}\n"
        f'url_tld = "{tlds}";\n'
    )
    (override / "logging.inc").write_text(
        f'type = "file";\nfilename = "{directory}/log/rspamd.log";\nlevel = "info";\n'
    )
    (override / "classifier-bayes.conf").write_text(
        'backend = "sqlite3";\nmin_learns = 1;\n'
        f'cache {{\n  type = "sqlite3";\n  path = "{directory}/db/learn_cache.sqlite";\n}}\n'
        f'statfile {{\n  symbol = "BAYES_HAM";\n  spam = false;\n'
        f'  path = "{directory}/db/bayes.ham.sqlite";\n}}\n'
        f'statfile {{\n  symbol = "BAYES_SPAM";\n  spam = true;\n'
        f'  path = "{directory}/db/bayes.spam.sqlite";\n}}\n'
        'learn_condition = "return function(task, is_spam, is_unlearn) return true end";\n'
    )
    for module in set(DISABLED_MODULES) - set(enabled):
        (override / f"{module}.conf").write_text("enabled = false;\n")
    # Markers in the subject that score a message into each action (GTUBE is the reject one).
    (directory / "rspamd.local.lua").write_text(LOCAL_RULES)
    (local / "actions.conf").write_text("reject = 15;\nadd_header = 6;\ngreylist = 4;\n")
    command = [
        binary,
        "-f",
        "-i",
        "-c",
        "/etc/rspamd/rspamd.conf",
        f"--var=LOCAL_CONFDIR={directory}",
        f"--var=DBDIR={directory}/db",
        f"--var=RUNDIR={directory}/run",
        f"--var=LOGDIR={directory}/log",
    ]
    if os.geteuid() == 0:
        command += ["-u", "root", "-g", "root"]
    out = (directory / "log" / "stdout.log").open("wb")
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = Rspamd(normal, controller, proxy_port, directory)
    try:
        _wait_ready(process, server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()


def _wait_ready(process: subprocess.Popen[bytes], server: Rspamd) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (server.directory / "log" / "stdout.log").read_text(errors="replace")
            log += (server.directory / "log" / "rspamd.log").read_text(errors="replace")
            raise RuntimeError(f"rspamd exited with {process.returncode}: {log[-3000:]}")
        try:
            ping = httpx.get(f"{server.url}/ping", timeout=1)
            stat = httpx.get(f"{server.controller_url}/stat", timeout=1)
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        if ping.status_code == 200 and stat.status_code == 200:
            return
        time.sleep(0.2)
    raise RuntimeError("rspamd did not answer within 60 s")
