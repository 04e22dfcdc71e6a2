"""Who a request is: etcd's ``auth.AuthInfo``."""

from __future__ import annotations

from dataclasses import dataclass

#: The user that must exist, holding the role that must exist, before auth can be enabled; a
#: user with the root role may do everything (etcd's rootUser / rootRole).
ROOT = "root"


@dataclass(frozen=True, slots=True)
class AuthInfo:
    """A request's user and the auth revision its credentials were checked at.

    ``revision`` 0 means "no user" (etcd's empty AuthInfo): with auth on, such a request is
    refused with "user name is empty". A simple token or a client certificate stands for the
    store's revision at the time of the check; a JWT carries the revision it was signed at, so
    it is refused ("revision of auth store is old") once the auth state changed after that.
    """

    username: str
    revision: int


#: No credentials (etcd's ``&auth.AuthInfo{}``).
NOBODY = AuthInfo("", 0)
