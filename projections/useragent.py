"""Browser, OS and device class from a User-Agent, parsed by ua-parser (uap-core's regexes)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ua_parser import parse

MOBILE_OS = frozenset({"Android", "iOS"})


@dataclass(frozen=True)
class Client:
    browser: str
    os: str
    device: str  # mobile, tablet, desktop or bot


@lru_cache(maxsize=4096)
def parse_client(user_agent: str) -> Client:
    result = parse(user_agent)
    browser = result.user_agent.family if result.user_agent else "Other"
    os_family = result.os.family if result.os else "Other"
    device = result.device
    if device and device.family == "Spider":
        kind = "bot"
    elif device and (device.family == "iPad" or "Tablet" in (device.brand or "")):
        kind = "tablet"
    elif os_family in MOBILE_OS:
        kind = "mobile"
    else:
        kind = "desktop"
    return Client(browser, os_family, kind)
