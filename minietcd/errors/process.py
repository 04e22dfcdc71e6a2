"""The member process, its configuration and minietcd-lab.

Part of the one exception tree drawn in ``minietcd/errors/__init__.py``."""

from __future__ import annotations

from minietcd.errors.base import MinietcdError

# --- member, config, lab -----------------------------------------------------------------------


class MemberFailedError(MinietcdError):
    """The member stopped itself because it can no longer persist, apply or step (an unexpected
    exception, a disk error, an entry it cannot parse): DESIGN rule 8, etcd's panic/Fatal. The
    message is the one log line that names the stage and the cause."""


class InconsistentDataError(MinietcdError):
    """--experimental-initial-corrupt-check found a peer whose key space hashes differently at
    the same revision and compact revision: the member refuses to start (etcd's
    ``<id> found data inconsistency with peers``)."""


class ConfigError(MinietcdError):
    pass


class ListenError(ConfigError):
    """A client, peer or metrics listener could not be bound. The message is Go's, as etcd
    prints it: ``listen tcp 127.0.0.1:2379: bind: address already in use``."""


class DataDirError(ConfigError):
    """The data dir (or WAL dir) cannot be listed or created: ``error listing data dir: PATH``."""


class LabError(MinietcdError):
    pass


class LabPortTakenError(LabError):
    """A port the lab wanted is in use by another process (taken between choosing and
    listening, or named by --port-base): choosing again may help, unless the user named it."""
