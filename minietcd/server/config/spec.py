"""The vocabulary of the flag table: a flag's :class:`Kind`, its :class:`FlagSpec`, the ``--help``
sections, and etcd's constants that defaults and checks refer to.

A flag is declared once, in :mod:`.table`, as a typed field of :class:`~.table.EtcdFlags`
whose default is made by :meth:`Section.flag`; the field's metadata carries everything else
(Go type, ``--help`` text, config-file key, whether minietcd acts on it). :class:`FlagSpec` is
that metadata with the flag's name, as parsing, ``--help``, env vars and the YAML file read it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from minietcd.errors import ConfigError
from minietcd.golang import env_var_name
from minietcd.server.urls import URL

T = TypeVar("T")


class UsageError(ConfigError):
    """A Go ``flag`` package error (unknown flag, bad value, missing argument).

    etcd prints the message and ``USAGE_LINE`` to stderr and exits with status 2 for these;
    every other :class:`ConfigError` exits with status 1.
    """

    exit_code = 2


# --- etcd's constants ----------------------------------------------------------------------------

DEFAULT_NAME: Final = "default"
DEFAULT_LISTEN_PEER_URL: Final = URL("http", "localhost:2380")
DEFAULT_LISTEN_CLIENT_URL: Final = URL("http", "localhost:2379")
DEFAULT_INITIAL_CLUSTER: Final = "default=http://localhost:2380"
CLUSTER_STATE_NEW: Final = "new"
CLUSTER_STATE_EXISTING: Final = "existing"
MAX_ELECTION_MS: Final = 50000
#: ``--quota-backend-bytes 0`` means this (etcdserver/quota.go DefaultQuotaBytes, 2 GiB).
DEFAULT_QUOTA_BYTES: Final = 2 * 1024 * 1024 * 1024
#: Above this etcd warns (MaxQuotaBytes, 8 GiB).
MAX_QUOTA_BYTES: Final = 8 * 1024 * 1024 * 1024
LOG_LEVELS: Final = ("debug", "info", "warn", "error", "dpanic", "panic", "fatal")
LOG_OUTPUT_DEFAULT: Final = "default"
LOG_OUTPUT_JOURNAL: Final = "systemd/journal"

ERR_CONFLICT_BOOTSTRAP: Final = (
    "multiple discovery or bootstrap flags are set. "
    'Choose one of "initial-cluster", "discovery" or "discovery-srv"'
)
ERR_UNSET_ADVERTISE_CLIENT_URLS: Final = (
    "--advertise-client-urls is required when --listen-client-urls is set explicitly"
)


# --- what a flag is ------------------------------------------------------------------------------


class Kind(enum.Enum):
    """How a flag's text becomes a value (the Go ``flag.Value`` etcd registers for it)."""

    STRING = "string"
    BOOL = "bool"
    UINT = "uint"  # Go uint: 64-bit on the platforms etcd supports
    UINT32 = "uint32"  # pkg/flags uint32Value (its own error text)
    UINT64 = "uint64"
    INT = "int"
    INT64 = "int64"
    DURATION = "time.Duration"
    URLS = "urls"  # pkg/flags UniqueURLs with "" as the allowed exception
    CORS = "cors"  # UniqueURLs with "*" as the allowed exception
    CHOICE = "choice"  # pkg/flags SelectiveStringValue
    STRINGS = "strings"  # pkg/flags StringsValue: split on commas, kept in order
    UNIQUE_STRINGS = "unique-strings"  # pkg/flags UniqueStringsValue: a sorted set
    IGNORED = "ignored"  # obsolete v0.4 flags: accepted, warned about, ignored

    @property
    def is_bool_flag(self) -> bool:
        """Go bool flags never consume the next argument: ``--flag false`` is an error."""
        return self in (Kind.BOOL, Kind.IGNORED)


#: ``FlagSpec.yaml`` when the config-file key is the flag's name.
SAME_AS_NAME: Final = "\0same"


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """One etcd flag: how to parse it, how ``--help`` shows it, its config-file key."""

    name: str
    kind: Kind
    #: --help section header; None for flags etcd registers but does not list.
    section: str | None = None
    #: The default as --help prints it (etcd's text, with etcd's quotes).
    help_default: str = ""
    help: tuple[str, ...] = ()
    #: Config-file key ("a.b" for nested); None when the YAML cannot set it.
    yaml: str | None = SAME_AS_NAME
    choices: tuple[str, ...] = ()
    #: The typed default (the value of ``Config().<attr>``); None for IGNORED flags.
    default: Any = None
    #: minietcd acts on it. Every other flag is accepted and validated as etcd does, then
    #: ignored with a warning (``Config.unimplemented_in_use``).
    implemented: bool = False

    @property
    def attr(self) -> str:
        return self.name.replace("-", "_")

    @property
    def yaml_key(self) -> str | None:
        return self.name if self.yaml == SAME_AS_NAME else self.yaml

    @property
    def env_var(self) -> str:
        return env_var_name("ETCD", self.name)


#: The key under which a table field's metadata holds its :class:`FlagSpec` (name filled in
#: from the field's name by :mod:`.table`).
SPEC_KEY: Final = "flag"


@dataclass(frozen=True, slots=True)
class Section:
    """A ``--help`` section (None: registered but not listed); makes the table's fields."""

    title: str | None

    def flag(
        self,
        kind: Kind,
        default: T,
        shown: str = "",
        *help: str,
        yaml: str | None = SAME_AS_NAME,
        choices: tuple[str, ...] = (),
        implemented: bool = False,
    ) -> T:
        """A table field: typed ``default``; ``shown`` and ``help`` are etcd's --help text."""
        spec = FlagSpec("", kind, self.title, shown, help, yaml, choices, default, implemented)
        return field(default=default, metadata={SPEC_KEY: spec})
