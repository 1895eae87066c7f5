"""Temporary users behind an SSO gate, placed in the groups courses are opened to.

TmpAuthenticator makes a new random user for each visit; the gate in front of
the hub has already decided who may visit. Courses (coursehub/courses.py) open
to groups, so each temporary user joins custom.sso.guestGroups at login, or
there would be nothing they could start.
"""

from __future__ import annotations

from tmpauthenticator import TmpAuthenticator
from traitlets import List, Unicode, default

from coursehub.launch_handler import CourseLinksMixin


class GuestTmpAuthenticator(CourseLinksMixin, TmpAuthenticator):
    """TmpAuthenticator whose users belong to `guest_groups`."""

    guest_groups = List(
        Unicode(),
        config=True,
        help="JupyterHub groups every temporary user is put in at login.",
    )

    @default("manage_groups")
    def _manage_groups_default(self):
        # ref: JupyterHub 5 Authenticator.manage_groups: "groups" in the auth
        # model is applied only when the authenticator manages groups.
        return True

    async def authenticate(self, handler, data):
        model = await super().authenticate(handler, data)
        return {**model, "groups": list(self.guest_groups)}
