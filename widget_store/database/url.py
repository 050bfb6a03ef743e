"""The Postgres setting, parsed once by libpq's own rules and written out in each driver's form.

Operators paste what their failover manager prints: `pg_autoctl show uri` gives libpq's
multi-host form (`postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write`), which
SQLAlchemy cannot parse, while SQLAlchemy's own form (`?host=h1:5432&host=h2:5432`) is one
libpq misreads (it keeps the last `host`, port and all). So the setting is read by libpq's
parser (psycopg's `conninfo_to_dict`), after SQLAlchemy's repeated `host=` entries are folded
into libpq's comma lists, and every consumer gets the form it parses:

- `sqlalchemy()` for the store's engines, Alembic and DBOS's system database (DBOS builds its
  engine from this string, and so does DBOS's CLI): hosts and ports as comma lists in the
  query, which SQLAlchemy's psycopg dialect hands to libpq unchanged;
- `libpq()` for the raw psycopg connections (the liveness lock, takeover);
- `display()` for people: the same, password hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# The schemes people and tools write for Postgres: libpq's two and SQLAlchemy's driver-qualified.
SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
DRIVER = "postgresql+psycopg"
# libpq keywords that are parts of a SQLAlchemy URL rather than entries of its query.
_URL_PARTS = ("user", "password", "dbname")


class InvalidDatabaseUrl(ValueError):
    """The setting is no Postgres URL libpq accepts; the message says why, without the password."""


@dataclass(frozen=True)
class PostgresUrl:
    """A Postgres connection target as libpq keywords (`host` and `port` may be comma lists)."""

    params: Mapping[str, str]

    @classmethod
    def parse(cls, setting: str) -> PostgresUrl:
        """Any URL libpq accepts, SQLAlchemy's repeated-host form, or a `key=value` string."""
        text = setting.strip()
        scheme, sep, _ = text.partition("://")
        if sep:
            if scheme.lower() not in SCHEMES:
                raise InvalidDatabaseUrl(f"the scheme {scheme}:// is not Postgres's")
            # SQLAlchemy writes a space in a password as is; libpq wants it encoded.
            text = _fold_repeated_hosts("postgresql" + text[len(scheme) :].replace(" ", "%20"))
        try:
            params = {k: str(v) for k, v in conninfo_to_dict(text).items() if v is not None}
        except psycopg.ProgrammingError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise InvalidDatabaseUrl(f"libpq cannot read it ({_hide(reason, text)})") from None
        if not params.get("dbname"):
            raise InvalidDatabaseUrl("it names no database (…/<database> at its end)")
        _check_ports(params)
        if "," in params.get("host", "") and "target_session_attrs" not in params:
            # Several servers: only the primary takes writes. libpq's default ("any") would
            # settle on the first that answers, a standby as likely as not.
            params["target_session_attrs"] = "read-write"
        return cls(MappingProxyType(params))

    @property
    def database(self) -> str:
        return self.params["dbname"]

    def with_database(self, name: str) -> PostgresUrl:
        return PostgresUrl(MappingProxyType({**self.params, "dbname": name}))

    def libpq(self) -> str:
        """A libpq connection string, for psycopg.connect."""
        return make_conninfo(**self.params)

    def sqlalchemy(self) -> sa.URL:
        """A SQLAlchemy URL on psycopg 3; sync and async engines both take it."""
        query = {k: v for k, v in self.params.items() if k not in _URL_PARTS}
        host, port = query.get("host", ""), query.get("port", "")
        # One TCP host keeps the familiar `host:port` place; several hosts, a socket folder or
        # an IPv6 address go in the query as libpq's comma lists, which the dialect passes on.
        single = host and not any(c in host for c in ",/:") and "," not in port
        if single:
            del query["host"]
            query.pop("port", None)
        return sa.URL.create(
            DRIVER,
            username=self.params.get("user"),
            password=self.params.get("password"),
            host=host if single else None,
            port=int(port) if single and port else None,
            database=self.params["dbname"],
            query=query,
        )

    def render(self) -> str:
        """The SQLAlchemy URL as a string, password included: what DBOS and its CLI read."""
        return self.sqlalchemy().render_as_string(hide_password=False)

    def display(self) -> str:
        """For logs and messages, as libpq writes a URL: `postgresql://user:***@h1:p1,h2:p2/db`
        (a socket folder stays in the query), never the password."""
        params = dict(self.params)
        user = quote(params.pop("user", ""), safe="")
        if params.pop("password", None) is not None:
            user += ":***"
        hosts = params.get("host", "")
        netloc = ""
        if hosts and not any(h.startswith("/") for h in hosts.split(",")):
            ports = params.pop("port", "").split(",")
            names = hosts.split(",")
            ports = ports * len(names) if len(ports) == 1 else ports
            netloc = ",".join(
                (f"[{h}]" if ":" in h else h) + (f":{p}" if p else "")
                for h, p in zip(names, ports, strict=True)
            )
            params.pop("host")
        database = quote(params.pop("dbname"), safe="")
        query = f"?{urlencode(params, safe='/,:')}" if params else ""
        return f"postgresql://{user + '@' if user else ''}{netloc}/{database}{query}"

    def same_target(self, other: PostgresUrl) -> bool:
        """The same servers, database and user (options such as timeouts aside)."""
        keys = ("host", "hostaddr", "port", "dbname", "user")
        return all(self.params.get(k) == other.params.get(k) for k in keys)


def _fold_repeated_hosts(url: str) -> str:
    """SQLAlchemy's `?host=h1:p1&host=h2:p2` as libpq's `?host=h1,h2&port=p1,p2`."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    hosts = [value for key, value in pairs if key == "host"]
    if len(hosts) < 2 and not any(_host_with_port(h) for h in hosts):
        return url
    if any(key == "port" for key, _ in pairs):
        raise InvalidDatabaseUrl(
            "it gives ports both in host=host:port entries and in port=: use one form"
        )
    names, ports = [], []
    for host in hosts:
        name, port = _split_host(host)
        names.append(name)
        ports.append(port)
    rest = [(key, value) for key, value in pairs if key != "host"]
    folded = [("host", ",".join(names)), ("port", ",".join(ports)), *rest]
    return urlunsplit(parts._replace(query=urlencode(folded, safe="/,:")))


def _host_with_port(host: str) -> bool:
    return not host.startswith("/") and host.count(":") == 1


def _split_host(host: str) -> tuple[str, str]:
    """`h:p` into its name and port; a socket folder, a bare name or an IPv6 address whole."""
    if _host_with_port(host):
        name, port = host.split(":")
        return name, port
    if host.startswith("[") and "]:" in host:  # [::1]:5432
        name, port = host[1:].split("]:")
        return name, port
    return host.strip("[]"), ""


def _check_ports(params: Mapping[str, str]) -> None:
    for port in params.get("port", "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise InvalidDatabaseUrl(f"{port!r} is not a port")
    hosts, ports = params.get("host"), params.get("port")
    if hosts and ports and "," in ports + hosts:
        if len(ports.split(",")) not in (1, len(hosts.split(","))):
            raise InvalidDatabaseUrl("it gives a different number of hosts and ports")


def _hide(message: str, text: str) -> str:
    """libpq's message, with the password it may quote replaced."""
    try:
        secret = urlsplit(text).password
    except ValueError:
        secret = None
    return message.replace(secret, "***") if secret else message
