"""Rotation of the MySQL source secret: alternating users (default with a master secret) or one user.

**Alternating users** (AWS's convention): the secret's user toggles between ``<base>`` and
``<base>_clone``. ``setSecret`` logs in with the admin user of the secret named by ``masterarn``,
creates the other user if it is absent, gives it the current user's grants (copied from
``SHOW GRANTS``) and a new password. Workers holding the current user and password keep working
during and after the rotation; the user that was current two rotations ago is the one whose
password changes, so its old password stops working then.

**Single user** (``"rotation_strategy": "single-user"`` in the secret or
``ROTATION_MYSQL_STRATEGY=single-user``): ``setSecret`` logs in as the user itself (with the
pending, current or previous password, whichever works) and changes its own password. Workers
holding the old password fail their next login and re-read the secret.

Statements are built by the pure functions below as ``(sql, params)`` for pymysql: account
names and passwords always travel as bound parameters (pymysql quotes them as string literals),
grant lines from ``SHOW GRANTS`` are parsed, checked and re-addressed to the new user.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from secrets import token_urlsafe
from typing import Any, Protocol

import pymysql

from aurora_replication.rotation.base import RotationError, RotationSettings, SecretStore, Strategy
from aurora_replication.secrets import MySQLSettings
from aurora_replication.source import connect as source_connect

CLONE_SUFFIX = "_clone"
MAX_USER_LENGTH = 80  # MariaDB; MySQL 8 allows 32 and says so itself
MAX_HOST_LENGTH = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# one SHOW GRANTS token: a quoted name or string, a run of blanks, or a run of other characters
_TOKEN = re.compile(r"`(?:``|[^`])*`|'(?:''|\\.|[^'\\])*'|\"(?:\"\"|\\.|[^\"\\])*\"|\s+|[^\s`'\"]+")
_FORBIDDEN_UNQUOTED = (";", "#", "--", "/*", "*/")
Statement = tuple[str, tuple[object, ...]]


class LoginFailed(Exception):
    """The server refused the user name or password (not a network or server error)."""


class Executor(Protocol):
    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


Connect = Callable[[MySQLSettings], Executor]


# ---- pure statement builders --------------------------------------------------------------
def validate_user(name: object, what: str = "MySQL user name") -> str:
    if not isinstance(name, str) or not name:
        raise RotationError(f"{what} must be a non-empty string")
    if len(name) > MAX_USER_LENGTH or _CONTROL.search(name):
        raise RotationError(f"{what} {name[:20]!r} is longer than {MAX_USER_LENGTH} or has a control character")
    return name


def validate_host(host: object) -> str:
    if not isinstance(host, str) or len(host) > MAX_HOST_LENGTH or _CONTROL.search(host):
        raise RotationError(f"MySQL account host {str(host)[:20]!r} is not a valid host name or pattern")
    return host


def alternate_user(username: str) -> str:
    """``app`` ↔ ``app_clone``."""
    validate_user(username)
    if username.endswith(CLONE_SUFFIX) and len(username) > len(CLONE_SUFFIX):
        return username[: -len(CLONE_SUFFIX)]
    return validate_user(username + CLONE_SUFFIX, "clone user name")


def account_hosts_sql(user: str) -> Statement:
    return "SELECT Host FROM mysql.user WHERE User = %s ORDER BY Host", (validate_user(user),)


def show_grants_sql(user: str, host: str) -> Statement:
    return "SHOW GRANTS FOR %s@%s", (validate_user(user), validate_host(host))


def create_user_sql(user: str, host: str, password: str) -> Statement:
    return "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (validate_user(user), validate_host(host), password)


def set_password_sql(user: str, host: str, password: str) -> Statement:
    return "ALTER USER %s@%s IDENTIFIED BY %s", (validate_user(user), validate_host(host), password)


def set_own_password_sql(password: str, server_version: str) -> Statement:
    """MySQL (5.7.6+, Aurora) lets a user ALTER USER itself; MariaDB wants CREATE USER for that, so SET PASSWORD."""
    if "mariadb" in server_version.lower():
        return "SET PASSWORD = PASSWORD(%s)", (password,)
    return "ALTER USER CURRENT_USER() IDENTIFIED BY %s", (password,)


def _unquote(token: str) -> str:
    q = token[0]
    if q in "`'\"" and len(token) >= 2 and token[-1] == q:
        body = token[1:-1].replace(q + q, q)
        return re.sub(r"\\(.)", r"\1", body) if q != "`" else body
    return token


def _tokens(line: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if not m:
            raise RotationError("a SHOW GRANTS line has an unterminated quote; copy that grant by hand")
        tokens.append(m.group())
        pos = m.end()
    return tokens


def default_roles_sql(user: str, host: str) -> Statement:
    """MySQL 8 keeps default roles in ``mysql.default_roles``; its ``SHOW GRANTS`` does not list them
    (MariaDB's prints ``SET DEFAULT ROLE``, which ``copy_grant_sql`` copies)."""
    return (
        "SELECT DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST FROM mysql.default_roles WHERE USER = %s AND HOST = %s "
        "ORDER BY DEFAULT_ROLE_USER, DEFAULT_ROLE_HOST",
        (validate_user(user), validate_host(host)),
    )


def set_default_roles_sql(roles: Sequence[tuple[str, str]], user: str, host: str) -> Statement:
    """``SET DEFAULT ROLE r1@h1, r2@h2 TO user@host`` (MySQL 8), every account a bound literal."""
    if not roles:
        raise RotationError("no default roles to set")
    accounts: list[object] = []
    for role, role_host in roles:
        accounts += [validate_user(role, "role name"), validate_host(role_host)]
    sql = "SET DEFAULT ROLE " + ", ".join(["%s@%s"] * len(roles)) + " TO %s@%s"
    return sql, (*accounts, validate_user(user), validate_host(host))


def has_default_roles_table(server_version: str) -> bool:
    """MySQL 8 (Aurora MySQL 3) has ``mysql.default_roles``; MariaDB and MySQL 5.7 do not."""
    if "mariadb" in server_version.lower():
        return False
    major = re.match(r"(\d+)\.", server_version)
    return major is not None and int(major.group(1)) >= 8


def copy_grant_sql(line: str, from_user: str, from_host: str, to_user: str, to_host: str) -> Statement | None:
    """The statement that gives ``to_user@to_host`` what one ``SHOW GRANTS`` line gives ``from_user``.

    Handles ``GRANT <privileges> ON <object> TO <account> [IDENTIFIED BY PASSWORD ...] [WITH GRANT
    OPTION]``, role grants (``GRANT <role> TO <account>``) and MariaDB's ``SET DEFAULT ROLE <role>
    FOR <account>``. The part before ``TO``/``FOR`` is kept as the server printed it (its names
    are already quoted, and it is checked to hold no statement separator or comment); the
    account becomes bound parameters; password hashes, ``REQUIRE`` and resource limits are
    dropped, ``WITH GRANT OPTION``/``WITH ADMIN OPTION`` kept. Returns None for a line that
    grants nothing (``GRANT USAGE ON *.*``, which ``CREATE USER`` already gives).
    """
    tokens = _tokens(line.strip())
    plain = [(i, t.upper()) for i, t in enumerate(tokens) if t[0] not in "`'\"" and not t.isspace()]
    first = [w for _, w in plain[:3]]
    if first[:1] == ["GRANT"]:
        keyword = "TO"
    elif first == ["SET", "DEFAULT", "ROLE"]:
        keyword = "FOR"
    else:
        raise RotationError(f"unexpected SHOW GRANTS line starting {line[:12]!r}; copy that grant by hand")
    at = next((i for i, w in plain if w == keyword), None)
    if at is None:
        raise RotationError(f"SHOW GRANTS line starting {line[:12]!r} has no {keyword}")
    prefix = tokens[:at]
    for t in prefix:
        if t[0] not in "`'\"" and any(f in t for f in _FORBIDDEN_UNQUOTED):
            raise RotationError("a SHOW GRANTS line holds a statement separator or a comment; copy it by hand")
    # the account: quoted user, '@', quoted host (possibly as one unquoted run for plain names)
    rest = tokens[at + 1 :]
    while rest and rest[0].isspace():
        rest.pop(0)
    account: list[str] = []
    while rest and not rest[0].isspace():
        account.append(rest.pop(0))
    grantee = "".join(_unquote(t) if t[0] in "`'\"" else t for t in account)
    if grantee != f"{from_user}@{from_host}":
        raise RotationError(f"a SHOW GRANTS line for {from_user!r} names another account; copy it by hand")
    tail = [w for w in (t.upper() for t in rest if t[0] not in "`'\"") if not w.isspace()]
    option = ""
    for i in range(len(tail) - 2):
        if tail[i] == "WITH" and tail[i + 1] in ("GRANT", "ADMIN") and tail[i + 2] == "OPTION":
            option = f" WITH {tail[i + 1]} OPTION"
    privileges = "".join(prefix).strip()
    if keyword == "TO" and re.fullmatch(r"GRANT\s+USAGE\s+ON\s+\*\.\*", privileges, re.IGNORECASE) and not option:
        return None
    sql = privileges.replace("%", "%%") + f" {keyword} %s@%s" + option
    return sql, (validate_user(to_user), validate_host(to_host))


# ---- connections --------------------------------------------------------------------------
@dataclass
class PyMySQLExecutor:
    conn: Any

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            return list(cur.fetchall())

    def close(self) -> None:
        self.conn.close()


def pymysql_connect(settings: MySQLSettings) -> Executor:
    """A connection as ``settings`` (TLS per the secret); ``LoginFailed`` when the password is refused."""
    try:
        return PyMySQLExecutor(source_connect.connect(settings, read_timeout=60))
    except pymysql.err.OperationalError as e:
        if e.args and e.args[0] in source_connect.AUTH_ERRORS:
            raise LoginFailed(f"MySQL refused user {settings.username!r} on {settings.host}") from None
        raise


# ---- the strategies -----------------------------------------------------------------------
def _works(connect: Connect, settings: MySQLSettings) -> bool:
    try:
        ex = connect(settings)
    except LoginFailed:
        return False
    ex.close()
    return True


@dataclass
class _MySQLStrategy:
    store: SecretStore
    settings: RotationSettings
    connect: Connect = field(default=pymysql_connect)

    def _settings(
        self, secret: dict[str, Any], fallback: dict[str, str] | None = None, **overrides: Any
    ) -> MySQLSettings:
        """``fallback``: where the secret has no host, port or dbname (default: SOURCE_HOST, ...)."""
        fallback = self.settings.source_fallback if fallback is None else fallback
        return MySQLSettings.from_secret({**secret, **overrides}, self.settings.mysql_ca_bundle, fallback)

    def test(self, pending: dict[str, Any]) -> None:
        ex = self.connect(self._settings(pending))
        try:
            rows = ex.execute("SELECT 1")
            if [tuple(str(v) for v in r) for r in rows] != [("1",)]:
                raise RotationError("SELECT 1 with the pending MySQL credentials did not return 1")
        finally:
            ex.close()

    def finish(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        return None


@dataclass
class AlternatingUsers(_MySQLStrategy):
    def create(self, current: dict[str, Any]) -> dict[str, Any]:
        if not current.get("masterarn"):
            raise RotationError("alternating-users rotation needs 'masterarn' in the source secret")
        return {
            **current,
            "username": alternate_user(str(current["username"])),
            "password": self.store.random_password(self.settings.password_length),
        }

    def set(self, current: dict[str, Any], pending: dict[str, Any], previous: dict[str, Any] | None) -> None:
        if _works(self.connect, self._settings(pending)):
            return  # set already (a retried step)
        cur_user, new_user = str(current["username"]), str(pending["username"])
        if new_user != alternate_user(cur_user):
            raise RotationError(f"pending user {new_user!r} is not the alternate of the current user {cur_user!r}")
        master_arn = str(current.get("masterarn") or "")
        master = self.store.value(master_arn, stage="AWSCURRENT") if master_arn else None
        if not master or not master.get("username") or not master.get("password"):
            raise RotationError(f"master secret {master_arn or '(masterarn missing)'} lacks username or password")
        # the master logs in to the same server as the rotated user, unless its secret says otherwise
        master_settings = self._settings(
            current,
            {
                k: v for k, v in self.settings.source_fallback.items() if k not in master
            },  # the master's own endpoint wins
            **{k: master[k] for k in ("host", "port", "tls") if k in master},
            username=master["username"],
            password=master["password"],
        )
        ex = self.connect(master_settings)
        try:
            hosts = [str(r[0]) for r in ex.execute(*account_hosts_sql(cur_user))]
            if not hosts:
                raise RotationError(f"MySQL user {cur_user!r} has no account in mysql.user; cannot copy its grants")
            roles_table = has_default_roles_table(str(ex.execute("SELECT VERSION()")[0][0]))
            password = str(pending["password"])
            for host in hosts:
                grants = [str(r[0]) for r in ex.execute(*show_grants_sql(cur_user, host))]
                # a new clone gets a throwaway password first: the pending one works only once every
                # grant and default role is in place, so a retried step never skips half a copy
                ex.execute(*create_user_sql(new_user, host, token_urlsafe(24)))
                for line in grants:
                    stmt = copy_grant_sql(line, cur_user, host, new_user, host)
                    if stmt is not None:
                        ex.execute(*stmt)
                if roles_table:  # MySQL 8: without this the clone logs in with no role active
                    roles = [(str(r[0]), str(r[1])) for r in ex.execute(*default_roles_sql(cur_user, host))]
                    if roles:
                        ex.execute(*set_default_roles_sql(roles, new_user, host))
                ex.execute(*set_password_sql(new_user, host, password))
        finally:
            ex.close()


@dataclass
class SingleUser(_MySQLStrategy):
    def create(self, current: dict[str, Any]) -> dict[str, Any]:
        return {**current, "password": self.store.random_password(self.settings.password_length)}

    def set(self, current: dict[str, Any], pending: dict[str, Any], previous: dict[str, Any] | None) -> None:
        if str(pending["username"]) != str(current["username"]):
            raise RotationError("single-user rotation: the pending secret names another user than the current one")
        if _works(self.connect, self._settings(pending)):
            return
        candidates = [current] + ([previous] if previous and previous.get("username") == current["username"] else [])
        for secret in candidates:
            try:
                ex = self.connect(self._settings(pending, password=secret["password"]))
            except LoginFailed:
                continue
            try:
                version = str(ex.execute("SELECT VERSION()")[0][0])
                ex.execute(*set_own_password_sql(str(pending["password"]), version))
            finally:
                ex.close()
            return
        raise RotationError(
            f"MySQL user {current['username']!r} cannot log in with the pending, current or previous password"
        )


def strategy(
    current: dict[str, Any], store: SecretStore, settings: RotationSettings, connect: Connect | None
) -> Strategy:
    name = str(current.get("rotation_strategy") or settings.mysql_strategy or "")
    if not name:
        name = "alternating-users" if current.get("masterarn") else "single-user"
    if name == "alternating-users":
        return AlternatingUsers(store, settings, connect or pymysql_connect)
    if name == "single-user":
        return SingleUser(store, settings, connect or pymysql_connect)
    raise RotationError(f"rotation_strategy {name!r} is not 'alternating-users' or 'single-user'")
