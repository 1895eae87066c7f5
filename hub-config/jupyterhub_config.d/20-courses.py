# Courses from the registry (deploy/courses/ -> custom.courses): who may start
# which course and image, launch links, start-up hooks, the shared-data mount.
# The spawner class is hub.config's CourseKubeSpawner on a cluster and the
# local hub's LocalCourseSpawner here; both are a CourseSpawner.
from coursehub.courses import pretend_notice
from coursehub.spawner import course_profile_list
from coursehub.values import get_config

c.CourseSpawner.courses = get_config("custom.courses")
c.CourseSpawner.hooks_path = get_config("custom.startupHooks.path")
c.CourseSpawner.shared_data = get_config("custom.sharedData")
c.CourseSpawner.home_path = get_config("singleuser.storage.homeMountPath")
# After the chart's own (empty) singleuser.profileList, which the schema keeps empty.
c.KubeSpawner.profile_list = course_profile_list
# A hub that judges courses by another date than today's says so on every page,
# or its users would take what is open for what is open today.
if pretend := c.CourseSpawner.get("today"):
    c.JupyterHub.template_vars = {
        **c.JupyterHub.get("template_vars", {}),
        "announcement": pretend_notice(pretend),
    }
