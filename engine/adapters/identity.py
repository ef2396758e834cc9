"""Who is at the keyboard (docs/roles.md): the OS user of the session, plus the SSH client address."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    user: str
    ssh_client: str | None = None
    host: str = ""
    played_by: str | None = None  # a rehearsal teammate played from someone else's terminal

    @property
    def actor(self) -> str:
        """The name written to the audit trail: ``user@ssh-client`` or ``user@host`` (and, for a
        teammate played in a rehearsal, who played them)."""
        where = f"{self.user}@{self.ssh_client or self.host or 'local'}"
        return f"{where} (played by {self.played_by})" if self.played_by else where


def current_identity() -> Identity:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    ssh = os.environ.get("SSH_CLIENT") or os.environ.get("SSH_CONNECTION") or ""
    return Identity(user=user, ssh_client=ssh.split()[0] if ssh else None, host=socket.gethostname())


def worker_id(identity: Identity | None = None) -> str:
    """A lease owner id unique to this process."""
    ident = identity or current_identity()
    return f"{ident.user}@{ident.host}:{os.getpid()}"
