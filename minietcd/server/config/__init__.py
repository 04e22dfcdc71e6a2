"""Server configuration: every etcd 3.4 flag, parsed and validated the way etcd 3.4.23 does.

minietcd is a drop-in ``etcd`` binary, so its command line is etcd's: the same flag names with
Go ``flag`` package syntax, the same ``ETCD_*`` environment variables, the same
``--config-file`` YAML keys, the same defaults and, where etcd rejects a configuration, the same
error text. The reference is etcd's source (etcdmain/config.go, etcdmain/help.go,
embed/config.go, pkg/flags) and the behaviour of the real binary; the compat test suite runs
both side by side.

Configuration is data: one table (:mod:`.table`) declares each flag once, with its type, typed
default, ``--help`` text, config-file key and whether minietcd implements it; everything else
is derived from it:

==============  ===================================================================
``spec``        the table's vocabulary (:class:`Kind`, :class:`FlagSpec`) and etcd's constants
``table``       the table: :class:`~.table.EtcdFlags`, :data:`FLAGS`, :data:`IMPLEMENTED_FLAGS`
``model``       :class:`Config` (the table's values + what parsing found) and the rules etcd
                derives from it: member/cluster IDs, bootstrap checks, auto compaction
``values``      ``flag.Value.Set`` per kind; the state of a parse
``parse``       :func:`parse_config`: Go flags, ``ETCD_*`` variables
``file``        ``--config-file`` (YAML through encoding/json's rules)
``validate``    embed.Config.Validate and the defaults it fills in
``help``        :func:`help_text`, :data:`USAGE_LINE`, :func:`version_text`
==============  ===================================================================

Go's own rules (strconv, time.Duration, pkg/flags texts) are shared with minietcdctl in
:mod:`minietcd.golang`.

Public API:

* :func:`parse_config` ``(argv, env) -> Config``; raises :class:`ConfigError` (or its
  :class:`UsageError` subclass for Go-flag syntax errors, after which etcd prints
  :data:`USAGE_LINE` to stderr and exits 2; other errors exit 1).
* :class:`Config`: one typed, immutable field per flag (``--initial-cluster-token`` is
  ``initial_cluster_token``), plus ``help``/``version`` requests, what the user set, and the
  warnings/notices etcd would log while parsing.
* :data:`FLAGS` / :data:`FLAGS_BY_NAME`: the flag registry; :data:`IMPLEMENTED_FLAGS`: the
  flags minietcd acts on; ``Config.unimplemented_in_use()``.
* :func:`help_text`, :data:`USAGE_LINE`, :func:`version_text`: what ``--help``/``--version`` print.

Checks that etcd performs only when bootstrapping a member without a WAL (``--initial-cluster``
contains this member, advertise URLs match it, no duplicate URLs) are *not* done by
:func:`parse_config`, because etcd ignores those flags once a member has data. The server calls
``Config.verify_bootstrap()`` (``--initial-cluster-state new``) or
``Config.verify_join_existing()`` (``existing``) when the data dir has no WAL yet.
"""

from __future__ import annotations

from minietcd.errors import ConfigError
from minietcd.server.config.help import USAGE_LINE, help_text, version_text
from minietcd.server.config.model import Config
from minietcd.server.config.parse import parse_config
from minietcd.server.config.spec import (
    CLUSTER_STATE_EXISTING,
    CLUSTER_STATE_NEW,
    DEFAULT_QUOTA_BYTES,
    MAX_QUOTA_BYTES,
    FlagSpec,
    Kind,
    UsageError,
)
from minietcd.server.config.table import FLAGS, FLAGS_BY_NAME, IMPLEMENTED_FLAGS, EtcdFlags

__all__ = [
    "CLUSTER_STATE_EXISTING",
    "CLUSTER_STATE_NEW",
    "DEFAULT_QUOTA_BYTES",
    "FLAGS",
    "FLAGS_BY_NAME",
    "IMPLEMENTED_FLAGS",
    "MAX_QUOTA_BYTES",
    "USAGE_LINE",
    "Config",
    "ConfigError",
    "EtcdFlags",
    "FlagSpec",
    "Kind",
    "UsageError",
    "help_text",
    "parse_config",
    "version_text",
]
