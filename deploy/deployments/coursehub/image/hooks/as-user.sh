#!/bin/sh
# Start-up hook, step 2 of 2, run as the user before their server
# (hub-config/coursehub/hooks.py). Baked into the course image, owned by root.
set -eu
: "${COURSEHUB_HOME:?}" "${COURSEHUB_COURSE:?}" "${COURSEHUB_SHARED_DIR:?}"
cd "${COURSEHUB_HOME}"
if [ -n "${COURSEHUB_CONTENT_REPO:-}" ]; then
  echo "as-user: pulling ${COURSEHUB_CONTENT_REPO} (${COURSEHUB_CONTENT_BRANCH}) into ~/${COURSEHUB_COURSE}"
  # nbgitpuller merges the instructor's changes without overwriting the student's.
  gitpuller "${COURSEHUB_CONTENT_REPO}" "${COURSEHUB_CONTENT_BRANCH}" "${COURSEHUB_COURSE}"
fi
echo "as-user: ~/shared -> ${COURSEHUB_SHARED_DIR}"
ln -sfn "${COURSEHUB_SHARED_DIR}" shared
if [ -n "${COURSEHUB_ADMIN_DIR:-}" ]; then
  # Instructors only: the course's admin folder, their shared home.
  echo "as-user: ~/admin -> ${COURSEHUB_ADMIN_DIR}"
  ln -sfn "${COURSEHUB_ADMIN_DIR}" admin
fi
