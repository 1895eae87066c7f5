# Enrollment by invite link (coursehub/enrollment.py): the service the values
# name in hub.services.enrollment is started by the hub with this Python and
# this config dir, may manage only the courses' enrollment groups, and signs
# invite links with its API token, which the GitHub login checks them with.
import sys

from coursehub.enrollment import SERVICE_NAME, service_role, user_role
from coursehub.values import CONFIG_DIR, get_config

(enrollment,) = [service for service in c.JupyterHub.services if service["name"] == SERVICE_NAME]
enrollment["command"] = [sys.executable, "-m", "coursehub.enrollment_service"]
enrollment["environment"] = {
    **enrollment.get("environment", {}),
    # The hub imports hub-config from its config dir; so does the service.
    "PYTHONPATH": str(CONFIG_DIR),
    "COURSEHUB_TODAY": c.CourseSpawner.get("today", ""),
}
c.JupyterHub.load_roles += [service_role(get_config("custom.courses")), user_role()]
c.CoursehubGitHubOAuthenticator.invite_key = enrollment["api_token"]
c.CoursehubGitHubOAuthenticator.courses = get_config("custom.courses")
c.CoursehubGitHubOAuthenticator.today = c.CourseSpawner.get("today", "")
