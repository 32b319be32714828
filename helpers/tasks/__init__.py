"""Tasks by name. A task module holds its config, data, prompt format and scorer; notebooks look
tasks up here, and adding one never edits the trainer."""

from helpers.tasks import addition

TASKS = {"addition": addition}
