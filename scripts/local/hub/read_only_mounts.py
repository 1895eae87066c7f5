"""A stand-in, on the local hub, for a volume mounted read-only in a student's server.

On a cluster a student's pod mounts the course's shared folder with
readOnly: true (hub-config/coursehub/storage.py), so every write under it fails
in the kernel with EROFS. The local hub runs every server as its one Unix user
and cannot mount anything, so the local spawner gives a student's JupyterLab
this contents manager instead: writes under `read_only_dir` (the course's
shared folder, however reached) raise the same OSError there, and
jupyter-server answers as it does on the cluster (500, "Read-only file
system"). Only the contents API (the file browser, saves, uploads) goes through
it: a terminal or a kernel in a local server is not held back.
"""

from __future__ import annotations

import errno
import os

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from traitlets import Unicode


class ReadOnlyMountsManager(AsyncLargeFileManager):
    """jupyter-server's default contents manager, with one folder read-only."""

    read_only_dir = Unicode(
        "", config=True, help="Folder every write under which fails as on a read-only mount."
    )

    def _refuse_on_read_only(self, os_path: str) -> None:
        if not self.read_only_dir:
            return
        top = os.path.realpath(self.read_only_dir)
        # The parent's real path: a new file does not exist yet, and the
        # student reaches the folder through the ~/shared link.
        where = os.path.join(os.path.realpath(os.path.dirname(os_path)), os.path.basename(os_path))
        if where == top or where.startswith(top + os.sep):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os_path)

    async def _save_file(self, os_path, content, format):
        self._refuse_on_read_only(os_path)
        return await super()._save_file(os_path, content, format)

    async def _save_large_file(self, os_path, content, format):
        self._refuse_on_read_only(os_path)
        return await super()._save_large_file(os_path, content, format)

    async def _save_notebook(self, os_path, nb, capture_validation_error=None):
        self._refuse_on_read_only(os_path)
        return await super()._save_notebook(os_path, nb, capture_validation_error)

    async def _save_directory(self, os_path, model, path=""):
        self._refuse_on_read_only(os_path)
        return await super()._save_directory(os_path, model, path)

    async def delete_file(self, path):
        self._refuse_on_read_only(self._get_os_path(path.strip("/")))
        return await super().delete_file(path)

    async def rename_file(self, old_path, new_path):
        for path in (old_path, new_path):
            self._refuse_on_read_only(self._get_os_path(path.strip("/")))
        return await super().rename_file(old_path, new_path)
