# Instructor and TA teams get a role over the student teams' servers (not admin).
# Appended: the chart has already put the culler's role in load_roles.
from coursehub.roles import instructor_role
from coursehub.values import get_config

c.JupyterHub.load_roles.append(
    instructor_role(get_config("custom.github"), get_config("custom.courses"))
)
