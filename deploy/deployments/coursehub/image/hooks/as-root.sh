#!/bin/sh
# Start-up hook, step 1 of 2, run as root before the user's server
# (hub-config/coursehub/hooks.py). Baked into the course image, owned by root.
# A new home volume belongs to root; the user must own their home folder.
set -eu
: "${COURSEHUB_HOME:?}" "${COURSEHUB_UID:?}" "${COURSEHUB_GID:?}"
echo "as-root: ${COURSEHUB_HOME} -> owner ${COURSEHUB_UID}:${COURSEHUB_GID}"
# Not recursive: a large home on NFS would take minutes, and only the top
# folder is ever created by someone else.
chown "${COURSEHUB_UID}:${COURSEHUB_GID}" "${COURSEHUB_HOME}"
chmod 0755 "${COURSEHUB_HOME}"
