# Each course's instructor and TA teams get a role over that course's students' servers (not admin).
# Appended: the chart has already put the culler's role in load_roles.
from coursehub.roles import instructor_roles
from coursehub.values import get_config

c.JupyterHub.load_roles += instructor_roles(get_config("custom.courses"))
