# The course request page (coursehub/course_request_service.py): the service the
# values name in hub.services.course-requests is started by the hub with this
# Python and this config dir. It needs nothing of the hub's API; only the groups
# custom.courseRequests.requesters names may log in to it (JupyterHub 5 lets a
# user use only the services a role names), so a student is refused by the hub.
import sys

from coursehub.course_request_service import SERVICE_NAME
from coursehub.values import CONFIG_DIR, get_config

(requests_service,) = [s for s in c.JupyterHub.services if s["name"] == SERVICE_NAME]
requests_service["command"] = [sys.executable, "-m", "coursehub.course_request_service"]
requests_service["environment"] = {
    **requests_service.get("environment", {}),
    "PYTHONPATH": str(CONFIG_DIR),  # the hub imports hub-config from its config dir; so does it
}
c.JupyterHub.load_roles.append(
    {
        "name": "course-requester",
        "description": "Ask for a course on the course request page.",
        "scopes": [f"access:services!service={SERVICE_NAME}"],
        "groups": sorted(get_config("custom.courseRequests.requesters")),
    }
)
