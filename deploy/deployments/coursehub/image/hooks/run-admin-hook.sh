#!/bin/sh
# Start-up step of a course with `hooks: admin` (hub-config/coursehub/hooks.py):
# runs the image's <step>.sh, then the <step>.sh the course's instructors keep
# in their admin folder, and keeps the output in logs/<user>-<step>.log there,
# readable by the folder's owner only. Baked into the image, owned by root:
# what it checks is the one thing the admin folder cannot change.
#
# Usage: run-admin-hook.sh as-root|as-user, started as root on a cluster (the
# as-user step switches to the server's uid and gid first) or as the local
# hub's one user.
set -eu
step="$1"
: "${COURSEHUB_ADMIN_HOOKS:?}" "${COURSEHUB_USER:?}" "${COURSEHUB_UID:?}" "${COURSEHUB_GID:?}"
admin="${COURSEHUB_ADMIN_HOOKS}"
baked="$(dirname "$0")/${step}.sh"
hook="${admin}/${step}.sh"
owner="$(stat -c %u "${admin}")"
mkdir -p "${admin}/logs"
chown "${owner}" "${admin}/logs"
chmod 0700 "${admin}/logs"
log="${admin}/logs/${COURSEHUB_USER}-${step}.log"
: >"${log}"
chown "${owner}" "${log}"
chmod 0600 "${log}"

# Whoever can write the admin hook decides what runs as root in every
# student's server: only the admin folder's owner (its instructors) or root
# may, and nothing may be a link to a file elsewhere.
unsafe() {
  if [ -L "$1" ]; then
    echo "$1 is a symbolic link"
  elif [ "$(stat -c %u "$1")" != 0 ] && [ "$(stat -c %u "$1")" != "${owner}" ]; then
    echo "$1 belongs to uid $(stat -c %u "$1"), not to the admin folder's owner (${owner}) or root"
  else
    case "$(stat -c %A "$1")" in
      ?????w????|????????w?) echo "$1 can be written by others than its owner ($(stat -c %A "$1"))" ;;
    esac
  fi
}

as_step() {
  if [ "${step}" = as-user ] && [ "$(id -u)" != "${COURSEHUB_UID}" ]; then
    # Root's capabilities go with the switch to the user (no keep-caps).
    setpriv --reuid="${COURSEHUB_UID}" --regid="${COURSEHUB_GID}" --clear-groups -- "$@"
  else
    "$@"
  fi
}

status=0
as_step sh "${baked}" >>"${log}" 2>&1 || status=$?
if [ "${status}" = 0 ] && [ -e "${hook}" ]; then
  problem="$(unsafe "${admin}")"
  problem="${problem:-$(unsafe "${hook}")}"
  if [ -n "${problem}" ]; then
    echo "warning: ${step}: refused to run ${hook}: ${problem}; the server was not started" >>"${log}"
    status=1
  else
    echo "${step}: running ${hook}" >>"${log}"
    as_step sh "${hook}" >>"${log}" 2>&1 || status=$?
  fi
fi
cat "${log}"
exit "${status}"
