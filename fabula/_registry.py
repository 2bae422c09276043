"""Inspect's entry point (pyproject: [project.entry-points.inspect_ai]). Inspect imports this
module when asked for a `fabula/...` name; the import registers the task as `fabula/honeypots`."""

from fabula.inspect_task import honeypots

__all__ = ["honeypots"]
