"""Telling people a course's step failed: one e-mail to its contacts and the hub's admins.

Settings are `mail` in deploy/lifecycle.yaml; the password, if the server wants
one, is $COURSEHUB_SMTP_PASSWORD, which the dispatcher takes out of its
environment before it runs any course's notebooks (see `password_from_environment`).
"""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage
from typing import Any

PASSWORD_ENV = "COURSEHUB_SMTP_PASSWORD"


def failure_message(mail: dict[str, Any], course: dict[str, Any], action: str, why: str):
    contacts = (course.get("lifecycle") or {}).get("contacts", [])
    message = EmailMessage()
    message["From"] = mail["sender"]
    message["To"] = ", ".join(dict.fromkeys([*contacts, *mail["admins"]]))
    message["Subject"] = f"coursehub: {course['slug']} is FAILED ({action})"
    message.set_content(
        f"The dispatcher could not {action} {course['title']} ({course['slug']}):\n\n"
        f"    {why}\n\n"
        "The course is now FAILED in its registry file. Fix the cause, then an approver\n"
        f"accepts it again (coursehub course approve {course['slug']}) and the next\n"
        "dispatcher run picks it up.\n"
    )
    return message


def password_from_environment() -> str | None:
    """The SMTP password, removed from the environment so no child process inherits it."""
    return os.environ.pop(PASSWORD_ENV, None) or None


def send(mail: dict[str, Any], message: EmailMessage, password: str | None = None) -> None:
    with smtplib.SMTP(mail["host"], mail["port"], timeout=30) as smtp:
        if mail.get("starttls"):
            smtp.starttls()
        if password:
            smtp.login(mail["user"], password)
        smtp.send_message(message)
