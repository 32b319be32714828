"""Tasks: each module holds a task's config, data, prompt format and scorer. Notebooks reach them
through helpers.studies; adding a task never edits the trainer."""
