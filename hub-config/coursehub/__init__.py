"""coursehub's hub-side code.

Mounted into the hub pod at /usr/local/etc/jupyterhub/coursehub/ through
hub.extraFiles (z2jh puts /usr/local/etc/jupyterhub on sys.path), and laid out
the same way by the local hub. The files in jupyterhub_config.d/ call into it.
"""
